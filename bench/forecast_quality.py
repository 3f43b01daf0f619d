"""bikeshare's forecast quality: skill against the seasonal-naive forecast at 1 h and 24 h.

Issue 14 §7's quality table. The pipeline's own path on the real data: the spec's
time-ordered split (train on the past, validate, test on the latest 20 %), the spec's
full hyper-parameters (LightGBM and XGBoost per horizon, the better on validation kept),
then the rolling-origin backtest of evaluation over the test period: every hour an origin,
the candidate and both naive references on the same origins. Takes a minute or two.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from castml.data.loaders import load_dataset
from castml.data.validation import validated
from castml.forecast_backtest import NAIVE24
from castml.forecast_evaluation import evaluate_forecast
from castml.models.forecast_family import train
from castml.spec import load_spec
from castml.workflow import _split

PROJECT = "bikeshare"


def run(profile: str = "") -> dict[str, Any]:
    """Train once, backtest, print the table; returns it as a dict."""
    spec = load_spec(PROJECT)
    assert spec.forecast is not None
    frame = validated(load_dataset(spec), spec)
    fit, validation, test = _split(frame, spec)
    with tempfile.TemporaryDirectory(prefix="castml-bench-forecast-") as tmp:
        model_dir = Path(tmp) / "model"
        params = spec.model.resolved(profile or None)
        train(spec, fit, validation, model_dir, Path(tmp) / "baseline", params)
        learners = json.loads((model_dir / "forecast.json").read_text())["learners"]
        result = evaluate_forecast(spec, model_dir, test, None, plots=False)
    rows = []
    for h in spec.forecast.horizons:
        rows.append(
            {
                "horizon_h": h,
                "learner": learners[str(h)],
                "rmse": result.candidate[f"rmse_h{h}"],
                "rmse_seasonal_naive": result.baseline[f"rmse_h{h}"],
                "rmse_naive24": result.baselines[NAIVE24][f"rmse_h{h}"],
                "skill_seasonal": result.candidate[f"skill_seasonal_h{h}"],
                "skill_naive24": result.candidate[f"skill_naive24_h{h}"],
                "smape": result.candidate[f"smape_h{h}"],
            }
        )
    period = f"{test[spec.time_column].min()} .. {test[spec.time_column].max()}"
    print(f"bikeshare backtest over the test period {period}: {result.test_rows} hourly origins")
    print(
        f"{'horizon':>8} {'learner':>9} {'RMSE':>7} {'seasonal':>9} {'naive24':>8}"
        f" {'skill vs seasonal':>18} {'skill vs naive24':>17} {'sMAPE %':>8}"
    )
    for r in rows:
        print(
            f"{r['horizon_h']:>6} h {r['learner']:>9} {r['rmse']:>7.1f} "
            f"{r['rmse_seasonal_naive']:>9.1f} {r['rmse_naive24']:>8.1f} "
            f"{r['skill_seasonal']:>18.3f} {r['skill_naive24']:>17.3f} {r['smape']:>8.1f}"
        )
    return {"project": PROJECT, "period": period, "origins": result.test_rows, "rows": rows}


def main() -> None:  # `make bench`: full parameters, the whole test period
    results = run()
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "forecast_quality.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
