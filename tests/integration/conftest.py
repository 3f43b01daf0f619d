"""Session fixtures for the model-family tests: each typed project registered once, through
`run_direct` (the pipeline's own steps) into the session's real MLflow server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.typed_projects import ADULT_SPEC, write_sales_project


@dataclass(frozen=True)
class RegisteredTyped:
    uri: str
    project: str
    version: int
    spec_path: Path
    workdir: Path  # run_direct's files: the split parquet files, model/, evaluation.json


def _register(uri: str, spec_path: Path, workdir: Path) -> RegisteredTyped:
    from castml.spec import load_spec
    from castml.workflow import run_direct

    registered = run_direct(str(spec_path), uri, workdir, profile="fast", run_id="families")
    return RegisteredTyped(uri, load_spec(spec_path).name, registered.version, spec_path, workdir)


@pytest.fixture(scope="session")
def registered_adult(
    mlflow_server: str, tmp_path_factory: pytest.TempPathFactory
) -> RegisteredTyped:
    """The Adult draft spec (gbm, fast profile) on the real census file."""
    return _register(mlflow_server, ADULT_SPEC, tmp_path_factory.mktemp("adult"))


@pytest.fixture(scope="session")
def registered_sales_xgboost(
    mlflow_server: str, tmp_path_factory: pytest.TempPathFactory
) -> RegisteredTyped:
    """The synthetic sales regression with the xgboost family."""
    root = tmp_path_factory.mktemp("sales-xgb")
    return _register(
        mlflow_server, write_sales_project(root, "sales-xgb", "xgboost"), root / "work"
    )
