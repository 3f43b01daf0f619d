"""The CLI reads well and reports user errors as one line, without a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from castml.cli.main import app
from tests.conftest import free_port


def _castml(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "castml.cli.main", *args],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def test_help_lists_the_command_groups() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in ("mlflow", "pipeline", "model", "data"):
        assert group in result.output


def test_user_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    result = _castml("data", "validate", str(tmp_path / "missing.csv"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error:") and "does not exist" in lines[0]


def test_unreachable_mlflow_names_the_uri() -> None:
    import os

    uri = f"http://127.0.0.1:{free_port()}"
    result = _castml("model", "list", "diecast", env={**os.environ, "CASTML_MLFLOW_URI": uri})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"MLflow at {uri} is unreachable" in result.stderr


def test_data_generate_then_validate_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "shots.parquet"
    runner = CliRunner()
    generated = runner.invoke(
        app, ["data", "generate", str(out), "--rows", "600", "--scenario", "seasonal_heat"]
    )
    assert generated.exit_code == 0, generated.output
    validated = runner.invoke(app, ["data", "validate", str(out)])
    assert validated.exit_code == 0 and "600 rows" in validated.output
