"""bikeshare through the whole training pipeline (kfp.local) on a slice of the real data.

One kfp.local run against a real MLflow server, on four months of the real Capital
Bikeshare file (written as a CSV of the same layout: the spec's `--data` path), with
the fast profile: validate, split (time-ordered), train (per-horizon LightGBM and
XGBoost, the better on validation kept), evaluate (rolling-origin backtests against the
seasonal-naive and naive-24h forecasts), register. Then the registered version is read
back as MLflow serves it: metrics, report, samples, and the pyfunc with plain
`mlflow.pyfunc.load_model`, also where castml cannot be imported.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import mlflow.artifacts
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from castml import registry
from castml.data.sources import source_file
from castml.mlflow_server import ServerLayout, start, stop_process
from castml.runtime.forecast_model import ForecastModel
from castml.spec import load_spec
from pipelines.runner import LocalRun, run_local
from tests.integration.test_pyfunc_without_castml import predict_without_castml
from tests.support.ports import free_port

pytestmark = pytest.mark.integration
HORIZON_METRICS = ("rmse", "mae", "smape", "skill_seasonal", "skill_naive24")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = start(ServerLayout(tmp_path_factory.mktemp("mlflow-forecast")), "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def data_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2012-01-01 .. 2012-04-30 of the real file, in its own layout (2,904 rows)."""
    raw = pd.read_csv(source_file(load_spec("bikeshare").source))
    rows = raw[(raw["ts"] >= "2012-01-01") & (raw["ts"] < "2012-05-01")]
    path = tmp_path_factory.mktemp("bikeshare-slice") / "bikeshare-2012.csv"
    rows.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def run(server: str, data_slice: Path, tmp_path_factory: pytest.TempPathFactory) -> LocalRun:
    root = tmp_path_factory.mktemp("kfp-forecast")
    return run_local("bikeshare", server, root, profile="fast", data_path=str(data_slice))


def test_the_first_forecast_version_passes_its_skill_floors_and_is_champion(
    server: str, run: LocalRun
) -> None:
    version = MlflowClient(server).get_model_version("bikeshare", str(run.version))
    assert run.version == 1 and set(version.aliases) == {"champion", "challenger"}
    assert version.tags[registry.TAG_GATE] == "passed: no champion yet; floors met"
    assert version.tags["castml.data.source"] != ""


def test_backtest_metrics_per_horizon_and_the_learners_evidence_are_logged(
    server: str, run: LocalRun
) -> None:
    client = MlflowClient(server)
    logged = client.get_run(client.get_model_version("bikeshare", "1").run_id).data
    for horizon in (1, 24):
        for metric in HORIZON_METRICS:
            assert np.isfinite(logged.metrics[f"{metric}_h{horizon}"])
            assert f"baseline_{metric}_h{horizon}" in logged.metrics
        for window in (1, 2, 3, 4):
            assert logged.metrics[f"rmse_h{horizon}_w{window}"] > 0
        # The baseline is the seasonal-naive forecast: skill 0 against itself.
        assert logged.metrics[f"baseline_skill_seasonal_h{horizon}"] == 0
    assert logged.metrics["skill_seasonal_h1"] >= 0.3  # the spec's floor, which passed
    assert logged.metrics["rmse_h1"] < logged.metrics["rmse_h24"]  # an hour is easier
    assert logged.params["model.family"] == "forecast"
    assert logged.params["forecast.learners"] == "['lightgbm', 'xgboost']"
    assert {"candidate.lightgbm.rmse_h1", "candidate.xgboost.rmse_h24"} <= set(logged.metrics)


def test_report_evaluation_and_samples_describe_the_backtest(server: str, run: LocalRun) -> None:
    run_id = MlflowClient(server).get_model_version("bikeshare", "1").run_id
    mlflow.set_tracking_uri(server)
    evaluation = mlflow.artifacts.load_dict(f"runs:/{run_id}/evaluation/evaluation.json")
    assert evaluation["task"] == "forecast" and evaluation["champion"] is None
    assert "forecast origins in 4 windows" in evaluation["champion_note"]
    naive24 = evaluation["baselines"]["naive24"]
    assert naive24["skill_naive24_h1"] == 0 and naive24["rmse_h24"] > 0
    report = mlflow.artifacts.load_text(f"runs:/{run_id}/{registry.REPORT_ARTIFACT}")
    assert "Gate: PASSED" in report and 'data-plot="shap_summary"' in report
    reference = pd.read_parquet(
        mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{registry.REFERENCE_ARTIFACT}")
    )
    assert {"ts", "count", "tmin", "tmax", "pn", "count_lag24", "score"} <= set(reference.columns)
    assert reference["score"].between(0, 5000).all() and not reference["tmin"].isna().any()
    background = np.load(
        mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{registry.BACKGROUND_ARTIFACT}")
    )
    assert background.shape == (100, 15) and background.dtype == np.float32


def test_the_pyfunc_forecasts_what_the_runtime_forecasts(
    server: str, run: LocalRun, data_slice: Path, tmp_path: Path
) -> None:
    mlflow.set_tracking_uri(server)
    pyfunc = mlflow.pyfunc.load_model("models:/bikeshare/1")
    local = mlflow.artifacts.download_artifacts(
        "models:/bikeshare/1", dst_path=str(tmp_path), tracking_uri=server
    )
    model = ForecastModel.load(Path(local) / "artifacts" / "model")
    rows = pd.read_csv(data_slice).tail(model.history_rows)
    history = {
        "ts": pd.to_datetime(rows["ts"]).to_numpy(),
        **{c: rows[c].to_numpy(np.float64) for c in ("count", "tmin", "tmax", "pn")},
    }
    design = model.features(history)
    served = pyfunc.predict(pd.DataFrame(design, columns=list(model.features)))
    forecast = model.forecast(history)
    assert forecast.shape == (2,) and (forecast > 0).all()
    np.testing.assert_allclose(served["prediction"].to_numpy(), forecast, rtol=1e-6)
    info = mlflow.models.get_model_info("models:/bikeshare/1")
    assert [c.name for c in info.signature.inputs] == list(model.features)
    # The same in a process where castml cannot be imported (as MLServer loads it).
    rows = pd.DataFrame(design, columns=list(model.features))
    alone = predict_without_castml(local, rows, tmp_path)["prediction"]
    np.testing.assert_allclose(alone, forecast, rtol=1e-6)
