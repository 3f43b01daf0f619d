"""Every run starts from the checked-in compiled pipeline, passed as a path; nothing compiles.

The chart runs the collector's retrain endpoint and the recurring-run hook Job with a
read-only root filesystem: `pipelines/compiled/` sits in read-only site-packages there.
Here the package lies in a read-only directory, and the KFP API is a closed loopback port.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from castml.errors import CastmlError
from pipelines.runner import TRAINING_PACKAGE, schedule, submit
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def _read_only(path: Path) -> None:
    for each in [path, *path.rglob("*")]:
        mode = each.stat().st_mode
        each.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture
def read_only_package(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "compiled"
    folder.mkdir()
    package = folder / TRAINING_PACKAGE.name
    shutil.copy(TRAINING_PACKAGE, package)
    _read_only(folder)
    yield package
    folder.chmod(0o755)


def _closed_port() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_submit_reads_a_read_only_package_and_names_the_unreachable_api(
    read_only_package: Path,
) -> None:
    host = _closed_port()
    with pytest.raises(CastmlError, match=f"KFP API at {host} is unreachable"):
        submit(host, "diecast", "http://mlflow:5000", package=read_only_package)
    assert [p.name for p in read_only_package.parent.iterdir()] == [TRAINING_PACKAGE.name]


def test_schedule_reads_a_read_only_package_and_names_the_unreachable_api(
    read_only_package: Path,
) -> None:
    host = _closed_port()
    with pytest.raises(CastmlError, match=f"KFP API at {host} is unreachable"):
        schedule(host, "diecast", "http://mlflow:5000", "0 0 2 1 * *", package=read_only_package)


def test_a_missing_package_is_named_before_any_connection(tmp_path: Path) -> None:
    missing = tmp_path / "training.yaml"
    with pytest.raises(CastmlError, match=r"no compiled pipeline at .*castml pipeline compile"):
        submit(_closed_port(), "diecast", "http://mlflow:5000", package=missing)


# In a child whose `pipelines` package is a read-only copy, as in an image: the launcher the
# CLI gives the collector submits, and the local runner starts, without compiling anything.
CHILD = """
import sys
from castml.cli.pipeline_launchers import KfpClusterLauncher
from castml.errors import CastmlError
import pipelines.runner

assert pipelines.runner.TRAINING_PACKAGE.is_relative_to(sys.argv[1]), pipelines.runner.__file__
try:
    KfpClusterLauncher(sys.argv[2], "http://mlflow:5000").launch("diecast", "drift", None)
except CastmlError as exc:
    print("launch:", exc)
try:
    pipelines.runner.run_local("diecast", sys.argv[3], pipelines.runner.COMPILED_DIR / "kfp")
except CastmlError as exc:
    print("local:", exc)
# `import kfp` loads kfp.compiler itself; the pipeline's Python source is what a compile needs.
loaded = {m for m in sys.modules if m.startswith("pipelines.")}
print("compiled:", sorted(loaded - {"pipelines.runner"}))
"""


def test_the_runners_of_an_installed_read_only_package_never_compile(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(
        ROOT / "pipelines", site / "pipelines", ignore=shutil.ignore_patterns("__pycache__")
    )
    _read_only(site)
    kfp, mlflow = _closed_port(), _closed_port()
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(site), kfp, mlflow],
            capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
        )  # fmt: skip
    finally:
        for each in [site, *site.rglob("*")]:
            each.chmod(0o755)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"launch: KFP API at {kfp} is unreachable" in done.stdout
    assert f"local: MLflow at {mlflow} is unreachable" in done.stdout
    assert "compiled: []" in done.stdout
    assert "Read-only" not in done.stdout + done.stderr
    assert "PermissionError" not in done.stdout + done.stderr
