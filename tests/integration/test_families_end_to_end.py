"""The gbm family end to end on real data: the Adult census spec through `run_direct`
(validate, split, train, evaluate, register) into a real MLflow, then the registered
pyfunc on raw text rows; and a regression spec with a time-ordered split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from castml.data.tabular_encoding import frame_columns
from castml.runtime.gbm import GbmModel
from castml.runtime.model_bundle import read_encoding, read_spec
from castml.spec import load_spec
from tests.integration.conftest import RegisteredTyped
from tests.support.typed_projects import adult_raw_rows, write_sales_project

pytestmark = pytest.mark.integration


def test_adult_trains_with_gbm_and_its_pyfunc_reads_raw_text_rows(
    registered_adult: RegisteredTyped,
) -> None:
    import mlflow.pyfunc

    mlflow.set_tracking_uri(registered_adult.uri)
    evaluation = json.loads((registered_adult.workdir / "evaluation.json").read_text())
    assert evaluation["gate"]["passed"], evaluation["gate"]
    assert evaluation["candidate"]["roc_auc"] >= 0.85  # the spec's floor, on 6,513 rows
    assert evaluation["candidate"]["roc_auc"] > evaluation["baseline"]["roc_auc"]

    model_dir = registered_adult.workdir / "model"
    assert read_spec(model_dir) == load_spec(registered_adult.spec_path)
    rows = adult_raw_rows()
    assert rows["workclass"].isna().any()  # imputed by the learned value, not refused
    pyfunc = mlflow.pyfunc.load_model(
        f"models:/{registered_adult.project}/{registered_adult.version}"
    )
    out = pyfunc.predict(rows)
    assert list(out.columns) == ["probability", "label"]

    encoding = read_encoding(model_dir)
    expected = GbmModel.load(model_dir).predict(
        encoding.encode(frame_columns(rows, encoding.names), np.float32)
    )
    np.testing.assert_allclose(out["probability"], expected["probability"], rtol=1e-6)
    np.testing.assert_array_equal(out["label"], expected["label"])

    unknown = rows.head(1).assign(education="Wizardry")
    with pytest.raises(Exception, match="education: unknown category 'Wizardry'"):
        pyfunc.predict(unknown)


def test_a_regression_spec_trains_with_gbm_on_a_time_ordered_split(
    mlflow_server: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from castml.workflow import run_direct

    root = tmp_path_factory.mktemp("sales-gbm")
    spec_path = write_sales_project(root, "sales-gbm", "gbm")
    registered = run_direct(str(spec_path), mlflow_server, root / "work", profile="fast")
    assert registered.version == 1

    work = root / "work"
    train, test = (pd.read_parquet(work / f"{part}.parquet") for part in ("train", "test"))
    assert train["when"].max() < test["when"].min()  # trained on the past only
    evaluation = json.loads((work / "evaluation.json").read_text())
    assert evaluation["gate"]["passed"], evaluation["gate"]
    assert evaluation["candidate"]["r2"] > 0.5
    assert evaluation["candidate"]["rmse"] < evaluation["baseline"]["rmse"]
    manifest = json.loads((work / "model" / "manifest.json").read_text())
    assert manifest["family"] == "gbm" and manifest["task"] == "regression"


def test_candidate_families_compete_and_the_run_logs_every_score(
    mlflow_server: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from mlflow import MlflowClient

    from castml.workflow import run_direct

    root = tmp_path_factory.mktemp("sales-candidates")
    spec_path = write_sales_project(root, "sales-candidates", "gbm", ["gbm", "xgboost"])
    registered = run_direct(str(spec_path), mlflow_server, root / "work", profile="fast")

    run = MlflowClient(mlflow_server).get_run(registered.run_id)
    chosen = json.loads((root / "work" / "model" / "manifest.json").read_text())["family"]
    assert run.data.params["model.family"] == chosen
    assert run.data.params["model.selected_by"] == "validation rmse"
    rmse = {f: run.data.metrics[f"candidate.{f}.rmse"] for f in ("gbm", "xgboost")}
    assert chosen == min(rmse, key=lambda f: (rmse[f], f != "gbm"))
