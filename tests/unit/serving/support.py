"""Real tiny model versions in a local model store (`<root>/<version>/model`), for serving tests.

Version 1 and 2 are trained for real (fast profile, different data seeds); version 3
is broken on disk (a truncated GBM file), version 4 loads but belongs to other features.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from castml.data.diecast import generate
from castml.models.train import train
from castml.spec import ProjectSpec, load_spec

BROKEN_VERSION = "3"
WRONG_FEATURES_VERSION = "4"


def feature_rows(spec: ProjectSpec, n: int, seed: int) -> np.ndarray:
    rows: np.ndarray = generate(n, seed)[spec.feature_names].to_numpy(np.float32)
    return rows


def build_store(root: Path) -> Path:
    """Built once per test session (unit and integration share it); the marker says done."""
    marker = root / ".built"
    if marker.is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    spec = load_spec("diecast")
    params = spec.model.resolved("fast")
    for version, seed in (("1", 1), ("2", 2)):
        folder = root / version
        train(
            spec,
            generate(1500, seed),
            generate(500, seed + 100),
            folder / "model",
            root / f"baseline-{version}",
            params,
        )
        np.save(folder / "background.npy", feature_rows(spec, 40, seed + 200))
    broken = root / BROKEN_VERSION
    shutil.copytree(root / "1", broken)
    gbm = broken / "model" / "gbm.txt"
    gbm.write_text(gbm.read_text()[:200])
    wrong = root / WRONG_FEATURES_VERSION
    shutil.copytree(root / "1", wrong)
    manifest = json.loads((wrong / "model" / "manifest.json").read_text())
    manifest["features"] = list(reversed(manifest["features"]))
    (wrong / "model" / "manifest.json").write_text(json.dumps(manifest))
    (root / "aliases.json").write_text(json.dumps({"champion": "1", "challenger": "2"}))
    marker.touch()
    return root


def valid_record(spec: ProjectSpec, seed: int = 0) -> dict[str, float]:
    row = feature_rows(spec, 1, seed)[0]
    return {name: float(value) for name, value in zip(spec.feature_names, row, strict=True)}
