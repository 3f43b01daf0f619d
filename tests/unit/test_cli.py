"""The CLI reads well and reports user errors as one line, without a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from castml.cli.main import app
from tests.support.ports import free_port


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


def test_an_unparseable_setting_is_one_error_line() -> None:
    """Kubernetes service links set CASTML_MLFLOW_PORT=tcp://ip:port in every pod."""
    import os

    env = {**os.environ, "CASTML_MLFLOW_PORT": "tcp://10.0.0.1:5000"}
    result = _castml("model", "list", "diecast", env=env)
    assert result.returncode == 78 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: CASTML_MLFLOW_PORT:")


def test_data_generate_then_validate_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "shots.parquet"
    runner = CliRunner()
    generated = runner.invoke(
        app, ["data", "generate", str(out), "--rows", "600", "--scenario", "seasonal_heat"]
    )
    assert generated.exit_code == 0, generated.output
    validated = runner.invoke(app, ["data", "validate", str(out)])
    assert validated.exit_code == 0 and "600 rows" in validated.output


# --- `castml` is every container's entry point: it must load in every image -------------------

IMAGE_EXTRAS = ("pipelines", "serving", "monitoring")

# A finder placed first on sys.meta_path: the modules an image lacks cannot be imported.
BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class NotInImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not in this image)", name=name)
        return None
sys.meta_path.insert(0, NotInImage())
sys.argv = ["castml", *sys.argv[2:]]
from castml.cli.main import app
app()
"""


def _distributions_of(extra: str) -> set[str]:
    """The distributions `pip install .[extra]` brings, from this venv's metadata."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    todo = [(req, extra) for req in map(Requirement, requires("castml") or [])]
    seen: set[str] = set()
    while todo:
        req, for_extra = todo.pop()
        if req.marker and not req.marker.evaluate({"extra": for_extra}):
            continue
        name = canonicalize_name(req.name)
        if name == "castml" or (name in seen and not req.extras):
            continue
        seen.add(name)
        try:
            needs = requires(req.name) or []
        except PackageNotFoundError:
            continue
        for wanted in ("", *req.extras):
            todo += [(Requirement(r), wanted) for r in needs]
    return seen


def _modules_not_in(extra: str) -> list[str]:
    from importlib.metadata import packages_distributions

    from packaging.utils import canonicalize_name

    present = _distributions_of(extra)
    return sorted(
        module
        for module, dists in packages_distributions().items()
        if module.isidentifier()
        and module not in {"castml", "pipelines", "serving", "monitoring"}
        and not any(canonicalize_name(d) in present for d in dists)
    )


@pytest.mark.parametrize("extra", IMAGE_EXTRAS)
def test_the_cli_loads_in_each_image(extra: str) -> None:
    blocked = _modules_not_in(extra)
    assert "torch" in blocked or extra == "pipelines"  # the image sets differ, as they should
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(blocked), "--help"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "collector" in result.stdout
