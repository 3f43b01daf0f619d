"""`--project` takes a spec path; the registered model is named after the spec's `name`.

Before: `castml pipeline run --project path/to/spec.yaml` trained, registered the model as
the spec's name, then crashed looking up a model named after the path.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from castml.cli.main import app
from castml.spec import PROJECTS_DIR

pytestmark = pytest.mark.integration


def _spec_file(folder: Path, name: str) -> Path:
    spec = yaml.safe_load((PROJECTS_DIR / "diecast.yaml").read_text())
    spec["name"] = name
    path = folder / "specs" / f"{name}-spec.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(spec))
    return path


def test_model_list_with_a_spec_path_names_the_spec_name(
    mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASTML_MLFLOW_URI", mlflow_server)
    spec = _spec_file(tmp_path, "listed-by-path")
    result = CliRunner().invoke(app, ["model", "list", str(spec)])
    assert "no registered versions of 'listed-by-path' yet" in str(result.exception)


@pytest.mark.slow
def test_pipeline_run_with_a_spec_path_registers_and_shows_the_spec_name(
    mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASTML_MLFLOW_URI", mlflow_server)
    monkeypatch.setenv("CASTML_PIPELINE_ROOT", str(tmp_path / "kfp"))
    spec = _spec_file(tmp_path, "run-by-path")
    monkeypatch.chdir(spec.parent)  # a relative path, as a user types it
    result = CliRunner().invoke(
        app, ["pipeline", "run", "--project", spec.name, "--profile", "fast"]
    )
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert "registered run-by-path version 1" in " ".join(result.output.split())
    assert MlflowClient(mlflow_server).get_registered_model("run-by-path").name == "run-by-path"
