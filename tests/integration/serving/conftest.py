"""Real predictor, transformer and explainer processes on 127.0.0.1, over a local model store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from castml.cli.local_processes import ServerProcess, start_server
from castml.spec import ProjectSpec, load_spec
from tests.unit.serving.support import build_store

Server = ServerProcess


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.getbasetemp() / "serving-store")


@pytest.fixture(scope="session")
def spec() -> ProjectSpec:
    return load_spec("diecast")


@pytest.fixture(scope="session")
def store_env(model_store: Path) -> dict[str, str]:
    return {"CASTML_MODEL_STORE": str(model_store), "CASTML_MODEL_VERSION": "champion"}


@dataclass
class Stack:
    predictor: Server
    transformer: Server
    explainer: Server


@pytest.fixture(scope="session")
def stack(store_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One predictor (REST + gRPC), transformer and explainer, on version 1 (@champion)."""
    logs = tmp_path_factory.mktemp("serving-logs")
    servers: list[Server] = []
    try:
        predictor = start_server("predictor", store_env, logs, grpc=True)
        servers.append(predictor)
        servers.append(start_server("transformer", store_env, logs, predictor=predictor))
        servers.append(start_server("explainer", store_env, logs, predictor=predictor))
        yield Stack(*servers)
    finally:
        for server in reversed(servers):
            server.stop()


@pytest.fixture
def own_predictor(store_env: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    """A predictor of the test's own, for tests that switch its version."""
    server = start_server("predictor", store_env, tmp_path, grpc=False)
    try:
        yield server
    finally:
        server.stop()
