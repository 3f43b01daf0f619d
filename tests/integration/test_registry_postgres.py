"""What only the PostgreSQL variant has: the chart's URI and the driver it loads, the password
check, MLflow's rows read from PostgreSQL itself, and the server's artifact folder. The registry
behaviour runs on both backends in `test_registry.py` and `serving/test_serving_reload.py`
(`registered_on_each_backend`)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from sqlalchemy.dialects import registry as dialects

from castml.errors import MlflowUnavailableError
from castml.protocol.mlflow_names import CHAMPION
from tests.conftest import REPO_ROOT, RegisteredProject
from tests.support.mlflow_entrypoint import EntrypointServer, chart_mlflow_env
from tests.support.postgres_server import PostgresServer

pytestmark = pytest.mark.integration

# The distributions that provide each SQLAlchemy PostgreSQL driver's module.
DRIVER_DISTRIBUTIONS = {
    "psycopg": {"psycopg"},  # psycopg 3 (`psycopg[binary]`)
    "psycopg2": {"psycopg2", "psycopg2-binary"},
}


def test_the_server_image_has_the_driver_the_charts_uri_loads() -> None:
    """A plain postgresql:// URL (the chart's) names no driver, so SQLAlchemy picks its
    default: psycopg 3 since SQLAlchemy 2.1. The image must install that one."""
    uri = chart_mlflow_env()["MLFLOW_BACKEND_STORE_URI"]
    assert re.match(r"postgresql://[^:]+:[^@]+@[^:/]+:\d+/\w+$", uri), uri
    driver = dialects.load(uri.split("://")[0]).driver
    lines = (REPO_ROOT / "mlflow" / "requirements.txt").read_text().splitlines()
    installed = {
        Requirement(line).name.lower() for line in lines if line.strip() and line[0] != "#"
    }
    wanted = DRIVER_DISTRIBUTIONS[driver]
    assert installed & wanted, (
        f"SQLAlchemy loads `{driver}` for the chart's postgresql:// URI, but "
        f"mlflow/requirements.txt installs none of {sorted(wanted)}"
    )


def test_logged_models_land_in_the_servers_artifact_folder(
    registered_diecast_postgres: RegisteredProject, mlflow_postgres_server: EntrypointServer
) -> None:
    """Clients never write there themselves: the proxy does (MLFLOW_ARTIFACTS_DESTINATION)."""
    models = list(mlflow_postgres_server.artifacts.rglob("MLmodel"))
    assert len(models) >= len(registered_diecast_postgres.versions), models


def test_a_wrong_database_password_stops_mlflow_and_says_why(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """The password in the URI is really checked (SCRAM over TCP), and the entry script's
    failure is reported with its cause rather than as a timeout."""
    wrong = dataclasses.replace(postgres_server, password="wrong")
    with pytest.raises(MlflowUnavailableError, match="password authentication failed"):
        EntrypointServer.start(wrong.uri, tmp_path / "artifacts", log_file=tmp_path / "log")


def test_the_registry_rows_are_in_postgresql(
    registered_diecast_postgres: RegisteredProject, postgres_server: PostgresServer
) -> None:
    """Read MLflow's own tables: the versions and @champion live in PostgreSQL."""
    import psycopg

    project = registered_diecast_postgres
    with psycopg.connect(postgres_server.uri, connect_timeout=5) as conn:
        versions = conn.execute(
            "select version from model_versions where name = %s order by version",
            (project.project,),
        ).fetchall()
        champion = conn.execute(
            "select version from registered_model_aliases where name = %s and alias = %s",
            (project.project, CHAMPION),
        ).fetchone()
    assert [row[0] for row in versions] == project.versions
    assert champion == (project.versions[0],)
