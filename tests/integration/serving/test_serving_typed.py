"""A typed project served from its registered version alone (issue 11 §1-§2): the real
UCI Adult `gbm` version in a real MLflow, a real predictor process started with the project
name only (Adult is not bundled: its spec and encoding come from the version), and raw
text rows in v2 BYTES tensors predicting what the registered pyfunc predicts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from castml.cli.local_processes import start_server
from tests.integration.conftest import RegisteredTyped
from tests.integration.serving.conftest import Server
from tests.support.typed_projects import adult_raw_rows, grpc_infer
from tests.support.typed_projects import adult_v2_inputs as v2_inputs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def adult_env(
    registered_adult: RegisteredTyped, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    return {
        "CASTML_MLFLOW_URI": registered_adult.uri,
        "CASTML_HOME": str(tmp_path_factory.mktemp("adult-serving")),
        "CASTML_MODEL_VERSION": str(registered_adult.version),
    }


@pytest.fixture(scope="module")
def adult_predictor(adult_env: dict[str, str]) -> Iterator[Server]:
    logs = Path(adult_env["CASTML_HOME"]) / "logs"
    server = start_server("predictor", adult_env, logs, project="adult", grpc=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def adult_transformer(adult_env: dict[str, str], adult_predictor: Server) -> Iterator[Server]:
    """In front of the predictor; it too takes the spec from the registered version."""
    logs = Path(adult_env["CASTML_HOME"]) / "logs"
    server = start_server(
        "transformer", adult_env, logs, project="adult", predictor=adult_predictor
    )
    try:
        yield server
    finally:
        server.stop()


def infer(server: Server, inputs: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(f"{server.url}/v2/models/adult/infer", json={"inputs": inputs}, timeout=30)


def with_value(rows: pd.DataFrame, name: str, datatype: str, value: Any) -> list[dict[str, Any]]:
    inputs = v2_inputs(rows.head(1))
    for tensor in inputs:
        if tensor["name"] == name:
            tensor["datatype"], tensor["data"] = datatype, [value]
    return inputs


def test_raw_rows_predict_as_the_registered_pyfunc(
    adult_predictor: Server, registered_adult: RegisteredTyped
) -> None:
    import mlflow.pyfunc

    rows = adult_raw_rows()
    assert rows["workclass"].isna().any()  # a missing value, imputed from the version
    response = infer(adult_predictor, v2_inputs(rows))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == str(registered_adult.version)
    outputs = {o["name"]: np.asarray(o["data"]) for o in body["outputs"]}
    assert set(outputs) == {"probability", "label"}  # gbm has no latent output

    mlflow.set_tracking_uri(registered_adult.uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/adult/{registered_adult.version}")
    expected = pyfunc.predict(rows)
    np.testing.assert_allclose(outputs["probability"], expected["probability"], rtol=1e-6)
    np.testing.assert_array_equal(outputs["label"], expected["label"])


def test_metadata_lists_the_raw_features_with_their_datatypes(adult_predictor: Server) -> None:
    meta = httpx.get(f"{adult_predictor.url}/v2/models/adult", timeout=10).json()
    datatypes = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert datatypes["education"] == "BYTES" and datatypes["age"] == "INT64"
    assert [o["name"] for o in meta["outputs"]] == ["probability", "label"]
    assert meta["platform"] == "castml_gbm"


@pytest.mark.parametrize(
    ("name", "datatype", "value", "said"),
    [
        ("education", "BYTES", "Wizardry", "unknown category 'Wizardry'"),
        ("education", "BYTES", None, "missing value(s) (refused)"),
        ("age", "BYTES", "forty", "not a valid int: 'forty'"),
        ("age", "FP64", 40.5, "not a valid int"),
    ],
    ids=["unknown-category", "missing-refused", "text-in-int", "fraction-in-int"],
)
def test_bad_values_are_400_naming_the_feature(
    adult_predictor: Server, name: str, datatype: str, value: Any, said: str
) -> None:
    response = infer(adult_predictor, with_value(adult_raw_rows(), name, datatype, value))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "InvalidFieldsError"
    [problem] = body["details"]
    assert problem["field"] == name and said in problem["problem"], body


def test_an_unknown_country_gets_the_other_code(adult_predictor: Server) -> None:
    inputs = with_value(adult_raw_rows(), "native_country", "BYTES", "Atlantis")
    assert infer(adult_predictor, inputs).status_code == 200  # `unknown: other`


def test_grpc_takes_bytes_tensors(adult_predictor: Server) -> None:
    rows = adult_raw_rows()
    assert adult_predictor.grpc_port is not None
    answer = grpc_infer(adult_predictor.grpc_port, "adult", v2_inputs(rows))
    probability = np.frombuffer(answer.raw_output_contents[0], dtype="<f4")
    rest = infer(adult_predictor, v2_inputs(rows)).json()["outputs"][0]["data"]
    np.testing.assert_array_equal(probability, np.asarray(rest, dtype=np.float32))


def json_records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a client writes them: strings, whole numbers, null for a missing value."""
    return [
        {k: (None if pd.isna(v) else v if isinstance(v, str) else int(v)) for k, v in r.items()}
        for r in rows.to_dict("records")
    ]


def test_transformer_takes_named_json_with_strings(
    adult_transformer: Server, adult_predictor: Server
) -> None:
    rows = adult_raw_rows()
    url = f"{adult_transformer.url}/v1/models/adult:predict"
    response = httpx.post(url, json={"instances": json_records(rows)}, timeout=30)
    assert response.status_code == 200, response.text
    answers = response.json()["predictions"]
    direct = infer(adult_predictor, v2_inputs(rows)).json()["outputs"]
    probability = dict((o["name"], o["data"]) for o in direct)["probability"]
    assert [a["prediction"]["probability"] for a in answers] == pytest.approx(probability, abs=1e-6)
    assert {a["prediction"]["class"] for a in answers} <= {"le_50k", "gt_50k"}
    assert all(a["latent_features"] == [] for a in answers)  # gbm has no latent output

    one = httpx.post(url, json={"features": json_records(rows)[0]}, timeout=30)
    assert one.status_code == 200 and one.json()["prediction"]["probability"] == pytest.approx(
        probability[0], abs=1e-6
    )


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("education", "Wizardry", "unknown category 'Wizardry'"),
        ("education", None, "missing"),
        ("age", "forty", "must be a number"),
        ("age", 40.5, "whole number"),
        ("age", 500, "outside the physical bounds"),
        ("sex", 1, "must be a string"),
    ],
    ids=["unknown-category", "missing-refused", "text-in-int", "fraction", "bounds", "type"],
)
def test_transformer_names_the_bad_field(
    adult_transformer: Server, name: str, value: Any, said: str
) -> None:
    record = {**json_records(adult_raw_rows())[0], name: value}
    response = httpx.post(
        f"{adult_transformer.url}/v1/models/adult:predict", json={"features": record}, timeout=30
    )
    assert response.status_code == 400, response.text
    assert name in response.text and said in response.text, response.text


def test_transformer_over_grpc_sends_the_same_columns(
    adult_env: dict[str, str], adult_predictor: Server, adult_transformer: Server
) -> None:
    """BYTES (empty: missing) and INT64 per feature over gRPC answer as over REST."""
    logs = Path(adult_env["CASTML_HOME"]) / "logs"
    over_grpc = start_server(
        "transformer",
        adult_env,
        logs,
        project="adult",
        predictor=adult_predictor,
        predictor_protocol="grpc-v2",
    )
    try:
        body = {"instances": json_records(adult_raw_rows())}
        answers = [
            httpx.post(f"{s.url}/v1/models/adult:predict", json=body, timeout=30).json()
            for s in (over_grpc, adult_transformer)
        ]
    finally:
        over_grpc.stop()
    grpc_answer, rest_answer = ([a["prediction"] for a in x["predictions"]] for x in answers)
    assert grpc_answer == rest_answer


@pytest.fixture(scope="module")
def adult_explainer(adult_env: dict[str, str], adult_predictor: Server) -> Iterator[Server]:
    """The explainer takes the spec from the registered version too."""
    logs = Path(adult_env["CASTML_HOME"]) / "logs"
    server = start_server("explainer", adult_env, logs, project="adult", predictor=adult_predictor)
    try:
        yield server
    finally:
        server.stop()


def test_explainer_attributes_each_raw_feature_and_shows_the_raw_values(
    adult_explainer: Server, adult_predictor: Server
) -> None:
    from castml.spec import load_spec
    from tests.support.typed_projects import ADULT_SPEC

    rows = adult_raw_rows()
    record = json_records(rows)[-1]  # one with a missing value (imputed by the version)
    names = load_spec(ADULT_SPEC).model_input_names
    url = f"{adult_explainer.url}/v1/models/adult:explain"
    answer = httpx.post(url, json={"features": record, "top_k": len(names)}, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert list(body["attributions"]) == names
    assert body["local_accuracy_error"] < 1e-4  # attributions sum to prediction - base
    direct = infer(adult_predictor, v2_inputs(rows.tail(1))).json()["outputs"]
    assert body["prediction"] == pytest.approx(direct[0]["data"][0], abs=1e-5)
    shown = {t["feature"]: t["value"] for t in body["top_features"]}
    assert shown == {k: v for k, v in record.items() if k in shown}  # as sent: text, null
    assert body["chart_png_base64"]

    v2 = httpx.post(
        f"{adult_explainer.url}/v2/models/adult/explain",
        json={"inputs": v2_inputs(rows.tail(1))},
        timeout=60,
    )
    assert v2.status_code == 200, v2.text
    assert v2.json()["attributions"] == pytest.approx(body["attributions"])

    bad = httpx.post(url, json={"features": {**record, "education": "Wizardry"}}, timeout=30)
    assert bad.status_code == 400 and "education" in bad.text, bad.text
    anchors = httpx.post(url, json={"features": record, "method": "anchors"}, timeout=30)
    assert anchors.status_code == 400 and "typed" in anchors.text
