"""The model call in process, per batch size: which GBM path is fastest, and the whole call.

GBM paths compared on the same design matrix (outputs must agree within 1e-9):
`Booster.predict` (LightGBM's Python API), `DirectGbm` (the same C call made directly;
for one row LightGBM's single-row fast path), and the numpy tree evaluator
(`bench/_numpy_trees.py`). `AeGbmModel.gbm` uses `DirectGbm`; this shows why.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench._numpy_trees import compile_trees
from castml.runtime.ae_gbm import AeGbmModel
from castml.spec import load_spec

RESULTS = Path(__file__).parent / "results"
SIZES = (1, 2, 8, 64, 512)


def per_call_us(fn: Callable[[], Any], budget_s: float = 0.4) -> float:
    """Median over 5 rounds of the mean call time, each round about budget_s / 5."""
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    calls = max(3, int(budget_s / 5 / once))
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        rounds.append((time.perf_counter() - start) / calls * 1e6)
    return float(np.median(rounds))


def main() -> None:
    from tests.unit.serving.support import build_store, feature_rows

    spec = load_spec("diecast")
    with tempfile.TemporaryDirectory() as tmp:
        store = build_store(Path(tmp) / "store")
        model = AeGbmModel.load(store / "1" / "model")
    trees = compile_trees(model.booster.model_to_string())
    x = feature_rows(spec, max(SIZES), 7)
    design_all, _ = model.design_matrix(x)
    results: dict[str, dict[str, float]] = {}
    print(
        f"{'rows':>5} {'Booster.predict':>16} {'DirectGbm':>16} {'numpy trees':>12} "
        f"{'model.gbm':>10} {'encoder':>9} {'predict':>9}   (us per call)"
    )
    for n in SIZES:
        design = np.ascontiguousarray(design_all[:n])
        scaled = model.scale(x[:n])
        reference = model.booster.predict(design, num_threads=1)
        row: dict[str, float] = {
            "booster": per_call_us(lambda d=design: model.booster.predict(d, num_threads=1)),
            "model_gbm": per_call_us(lambda d=design: model.gbm(d)),
            "encoder": per_call_us(lambda s=scaled: model.encoder(s)),
            "predict": per_call_us(lambda b=x[:n]: model.predict(b)),
        }
        assert np.abs(model.gbm(design) - reference).max() <= 1e-9
        if model.direct.accepts(design):
            assert np.abs(model.direct(design) - reference).max() <= 1e-9
            row["direct"] = per_call_us(lambda d=design: model.direct(d))
        if trees is not None:
            assert np.abs(trees(design) - reference).max() <= 1e-9
            row["numpy_trees"] = per_call_us(lambda d=design: trees(d))
        results[str(n)] = row
        print(
            f"{n:>5} {row['booster']:>16.1f} {row.get('direct', float('nan')):>16.1f} "
            f"{row.get('numpy_trees', float('nan')):>12.1f} {row['model_gbm']:>10.1f} "
            f"{row['encoder']:>9.1f} {row['predict']:>9.1f}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "model.json").write_text(json.dumps(results, indent=1))
