"""The layering of DESIGN.md §3 is checked, not only written down (`make check` runs it).

`lint-imports` reads the contracts in pyproject.toml. The tree passes; a copy of the tree
with one forbidden import added fails, naming the import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("castml", "pipelines", "serving", "monitoring", "studio", "ui")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first: grimp finds the packages of `root`, not the editable install.
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _copy_tree(tmp_path: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(
            ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.yaml")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_contract() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


# (module added to a copy of the tree, its one line, what lint-imports says)
PROBES = [
    (
        "monitoring/_probe.py",
        "import serving.settings",
        "monitoring is not allowed to import serving",
    ),
    ("serving/_probe.py", "import pipelines.runner", "serving is not allowed to import pipelines"),
    (
        "pipelines/_probe.py",
        "import castml.cli.console",
        "pipelines is not allowed to import castml.cli",
    ),
    ("castml/_probe.py", "import monitoring.window", "_probe is not allowed to import monitoring"),
    ("castml/data/_probe.py", "import castml.cli.console", "is not allowed to import castml.cli"),
    # The UI reaches the rooms over HTTP only; the studio may use them, never a face above it.
    ("ui/_probe.py", "import serving.settings", "ui is not allowed to import serving"),
    ("studio/_probe.py", "import castml.cli.console", "studio is not allowed to import castml.cli"),
    ("castml/_probe.py", "import studio.settings", "_probe is not allowed to import studio"),
]


@pytest.mark.parametrize(("module", "line", "broken"), PROBES)
def test_a_forbidden_import_fails_the_check(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    root = _copy_tree(tmp_path)
    (root / module).write_text(f"{line}  # noqa: F401\n")
    result = _lint(root)
    assert result.returncode != 0
    assert broken in result.stdout, result.stdout
