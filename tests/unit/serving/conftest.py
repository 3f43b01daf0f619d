from __future__ import annotations

from pathlib import Path

import pytest

from castml.spec import ProjectSpec, load_spec
from tests.unit.serving.support import build_store


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.getbasetemp() / "serving-store")


@pytest.fixture(scope="session")
def spec() -> ProjectSpec:
    return load_spec("diecast")
