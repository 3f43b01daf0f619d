"""Shared fixtures: real servers on 127.0.0.1 with free ports, real tiny models.

`mlflow_server` is a real MLflow server (SQLite + local artifacts) for the whole
session. `registered_diecast` registers two real (fast-profile) die-casting
versions in it: version 1 is @champion, version 2 @challenger.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.ports import free_port

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow server on 127.0.0.1; yields its tracking URI."""
    from castml.mlflow_server import ServerLayout, start, stop_process

    port = free_port()
    process = start(ServerLayout(tmp_path_factory.mktemp("mlflow")), "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


@dataclass(frozen=True)
class RegisteredProject:
    uri: str
    project: str
    versions: list[int]


@pytest.fixture(scope="session")
def registered_diecast(
    mlflow_server: str, tmp_path_factory: pytest.TempPathFactory
) -> RegisteredProject:
    """Two fast-profile versions of `diecast`: v1 @champion, v2 @challenger (different seeds)."""
    from castml.workflow import run_direct

    versions = []
    for seed in (7, 8):
        workdir = tmp_path_factory.mktemp(f"diecast-seed{seed}")
        overrides = json.dumps({"autoencoder": {"seed": seed}, "gbm": {"seed": seed}})
        registered = run_direct(
            "diecast",
            mlflow_server,
            workdir,
            profile="fast",
            overrides_json=overrides,
            run_id=f"fixture-{seed}",
        )
        versions.append(registered.version)
    return RegisteredProject(uri=mlflow_server, project="diecast", versions=versions)
