"""Start-up problems print one line naming the cause and the fix, and exit with the code of
their class (issue 10 §7; codes in serving/__main__.py); `CASTML_DEBUG=1` shows the traceback.
Every case is a real `python -m serving` process against a real MLflow, or none."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from castml.cli.local_processes import SOURCE_ROOT, free_port
from castml.spec import PROJECTS_DIR
from serving import startup_errors as codes

pytestmark = pytest.mark.integration


def start(
    role: str, env: dict[str, str], model_name: str = "diecast"
) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "serving", role, "--http_port", str(free_port())]
    args += ["--model_name", model_name, "--predictor_host", "127.0.0.1:1"]
    if role == "predictor":
        args = args[:-2]
    return subprocess.run(
        args,
        cwd=SOURCE_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def assert_one_line(run: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == code, run.stderr
    assert "Traceback" not in run.stderr and len(errors) == 1, run.stderr
    assert "fix:" in errors[0] or code == codes.EXIT_CONFIG, errors[0]
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def test_registry_problems_at_predictor_start(registered_diecast: Any, tmp_path: Path) -> None:
    uri = registered_diecast.uri
    dead = f"http://127.0.0.1:{free_port()}"
    absent = tmp_path / "absent.yaml"
    text = (PROJECTS_DIR / "diecast.yaml").read_text()
    absent.write_text(text.replace("name: diecast", "name: castml-absent", 1))
    home = {"CASTML_HOME": str(tmp_path)}
    cases: list[tuple[dict[str, str], str, int, tuple[str, ...]]] = [
        ({"CASTML_MLFLOW_URI": dead}, "diecast", codes.EXIT_REGISTRY_UNAVAILABLE, ("unreachable",)),
        ({"CASTML_MLFLOW_URI": "not a uri"}, "diecast", codes.EXIT_CONFIG, ("CASTML_MLFLOW_URI",)),
        (
            {"CASTML_MLFLOW_URI": uri, "CASTML_MODEL_VERSION": "staging"},
            "diecast",
            codes.EXIT_NOT_FOUND,
            ("no alias @staging", "castml model promote"),
        ),
        (
            {"CASTML_MLFLOW_URI": uri, "CASTML_MODEL_VERSION": "99"},
            "diecast",
            codes.EXIT_NOT_FOUND,
            ("no version 99",),
        ),
        (
            {"CASTML_MLFLOW_URI": uri},
            str(absent),
            codes.EXIT_NOT_FOUND,
            ("'castml-absent' is not registered", "castml pipeline run"),
        ),
        ({"CASTML_MLFLOW_URI": uri}, "nosuch", codes.EXIT_CONFIG, ("no project spec 'nosuch'",)),
    ]
    for env, model_name, code, words in cases:
        assert_one_line(start("predictor", {**home, **env}, model_name), code, *words)


def test_transformer_and_explainer_fail_in_one_line_too(tmp_path: Path) -> None:
    home = {"CASTML_HOME": str(tmp_path)}
    for role in ("transformer", "explainer"):
        assert_one_line(start(role, home, "nosuch"), codes.EXIT_CONFIG, "nosuch")
    bad_uri = {**home, "CASTML_MLFLOW_URI": "ftp://mlflow"}
    assert_one_line(start("explainer", bad_uri), codes.EXIT_CONFIG, "not an http(s) URL")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    run = start("predictor", {"CASTML_HOME": str(tmp_path), "CASTML_DEBUG": "1"}, "nosuch")
    assert run.returncode != 0 and "Traceback" in run.stderr
