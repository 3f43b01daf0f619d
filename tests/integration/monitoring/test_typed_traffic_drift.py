"""A typed project's traffic through the whole monitoring path (issue 11): the real UCI Adult
`gbm` version served by a real predictor whose payload log posts to a real collector, over
REST (JSON) and gRPC (BYTES tensors). The collector learns the project from its spec file
(Adult is not bundled), logs the raw values (text stays text, a missing value stays null),
and the drift job over those rows tests each categorical as a category."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from castml.cli.local_processes import ServerProcess, start_server
from monitoring.drift_job import run_drift
from monitoring.settings import DriftSettings
from tests.integration.conftest import RegisteredTyped
from tests.support.collector_process import TOKEN, CollectorProcess, read_logs
from tests.support.typed_projects import ADULT_SPEC, ADULT_TEXT, adult_v2_inputs, grpc_infer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def adult_rows() -> pd.DataFrame:
    from castml.data.loaders import load_dataset
    from castml.spec import load_spec

    spec = load_spec(ADULT_SPEC)
    return load_dataset(spec)[spec.feature_names].sample(n=400, random_state=5)


@pytest.fixture
def logged_stack(
    registered_adult: RegisteredTyped, tmp_path: Path
) -> Iterator[tuple[CollectorProcess, ServerProcess]]:
    collector = CollectorProcess(
        tmp_path / "collector", CASTML_COLLECTOR_SPEC_FILES=json.dumps([str(ADULT_SPEC)])
    ).start()
    env = {
        "CASTML_MLFLOW_URI": registered_adult.uri,
        "CASTML_HOME": str(tmp_path / "serving"),
        "CASTML_MODEL_VERSION": str(registered_adult.version),
        "CASTML_LOGGER_URL": f"http://127.0.0.1:{collector.port}/",
        "CASTML_LOGGER_TOKEN": TOKEN,
    }
    predictor: ServerProcess | None = None
    try:
        predictor = start_server("predictor", env, tmp_path / "logs", project="adult", grpc=True)
        yield collector, predictor
    finally:
        if predictor is not None:
            predictor.stop()
        collector.stop()


def test_typed_rows_are_logged_raw_and_their_categories_drift(
    logged_stack: tuple[CollectorProcess, ServerProcess],
    registered_adult: RegisteredTyped,
    adult_rows: pd.DataFrame,
) -> None:
    collector, predictor = logged_stack
    # A shifted population: every shot from one sex and one occupation.
    shifted = adult_rows.copy()
    shifted["sex"], shifted["occupation"] = "Female", "Tech-support"
    url = f"{predictor.url}/v2/models/adult/infer"
    for start in range(0, len(shifted) - 1, 100):
        batch = shifted.iloc[start : start + 100]
        answer = httpx.post(url, json={"inputs": adult_v2_inputs(batch)}, timeout=30)
        assert answer.status_code == 200, answer.text
    clean = shifted[shifted[list(ADULT_TEXT)].notna().all(axis=1)].head(3)
    assert predictor.grpc_port is not None  # no JSON body: the log gets the raw columns
    grpc_infer(predictor.grpc_port, "adult", adult_v2_inputs(clean), "over-grpc")
    version = str(registered_adult.version)
    collector.wait_for(lambda: len(read_logs(collector.home, version, "adult")) == 403)

    logged = read_logs(collector.home, version, "adult")
    assert set(logged["sex"]) == {"Female"}
    assert logged["workclass"].isna().sum() == shifted["workclass"].isna().sum()
    over_grpc = logged[logged["request_id"] == "over-grpc"].sort_values("row")
    assert over_grpc["education"].tolist() == clean["education"].tolist()
    np.testing.assert_allclose(over_grpc["age"], clean["age"].astype(float))

    settings = DriftSettings.model_validate(
        {"home": collector.home, "mlflow_uri": registered_adult.uri}
    )
    # By name: Adult is not bundled, so the job takes the spec its @champion carries.
    result = run_drift("adult", "1d", settings)
    assert result.status != "insufficient_data", result.reason
    sex, occupation, race = (result.features[n] for n in ("sex", "occupation", "race"))
    assert sex.drifted and occupation.drifted and max(sex.score, occupation.score) < 1e-6
    assert race.method == sex.method == "chisquare"  # categories compared as categories
    assert result.features["age"].method == "ks"  # numbers as numbers
