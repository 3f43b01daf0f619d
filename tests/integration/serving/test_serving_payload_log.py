"""The predictor's payload logger against a real collector (CASTML_LOGGER_URL set).

Every successful infer, over REST (JSON and binary tensors) and gRPC, becomes one
joined Parquet row per instance in the collector, with the features the model saw,
the probability it answered and the version that answered. A full sender queue never
fails a request and is counted on /metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from kserve import InferenceGRPCClient, InferInput, InferRequest

from castml.cli.local_processes import ServerProcess, free_port, start_server
from castml.runtime.ae_gbm import AeGbmModel
from castml.spec import ProjectSpec
from tests.integration.serving.conftest import Stack
from tests.support.collector_process import TOKEN, CollectorProcess, read_logs
from tests.unit.serving.support import feature_rows

pytestmark = pytest.mark.integration


def metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not on {url}/metrics")


def infer(server: ServerProcess, body: bytes, **headers: str) -> dict[str, Any]:
    answer = httpx.post(
        f"{server.url}/v2/models/diecast/infer",
        content=body,
        headers={"content-type": "application/json", **headers},
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def matrix_request(x: np.ndarray, **extra: Any) -> bytes:
    tensor = {"name": "features", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel()}
    return orjson.dumps({"inputs": [tensor], **extra}, option=orjson.OPT_SERIALIZE_NUMPY)


def per_feature_request(x: np.ndarray, names: list[str]) -> bytes:
    tensors = [
        {"name": name, "shape": [len(x)], "datatype": "FP32", "data": x[:, j]}
        for j, name in enumerate(names)
    ]
    return orjson.dumps({"inputs": tensors}, option=orjson.OPT_SERIALIZE_NUMPY)


def binary_request(x: np.ndarray, request_id: str) -> tuple[bytes, str]:
    """The binary tensor extension: a JSON header, then the raw little-endian FP32 rows."""
    raw = np.ascontiguousarray(x, dtype="<f4").tobytes()
    header = orjson.dumps(
        {
            "id": request_id,
            "inputs": [
                {
                    "name": "features",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
        }
    )
    return header + raw, str(len(header))


def grpc_infer(server: ServerProcess, x: np.ndarray, request_id: str) -> Any:
    tensor = InferInput("features", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)

    async def call() -> Any:
        client = InferenceGRPCClient(f"127.0.0.1:{server.grpc_port}", retries=0)
        try:
            return await client.infer(InferRequest("diecast", [tensor], request_id=request_id))
        finally:
            await client.close()

    return asyncio.run(call())


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    process = CollectorProcess(tmp_path / "collector-home").start()
    try:
        yield process
    finally:
        process.stop()


def test_each_infer_becomes_joined_rows_in_the_collector(
    collector: CollectorProcess,
    store_env: dict[str, str],
    model_store: Path,
    spec: ProjectSpec,
    tmp_path: Path,
) -> None:
    env = {
        **store_env,
        "CASTML_LOGGER_URL": f"http://127.0.0.1:{collector.port}/",
        "CASTML_LOGGER_TOKEN": TOKEN,
    }
    predictor = start_server("predictor", env, tmp_path / "logs", grpc=True)
    model = AeGbmModel.load(model_store / "1" / "model")
    sent: dict[str, np.ndarray] = {}  # request id -> the rows sent
    try:
        x = feature_rows(spec, 3, 41)
        assert infer(predictor, matrix_request(x, id="log-matrix"))["id"] == "log-matrix"
        sent["log-matrix"] = x

        x = feature_rows(spec, 2, 42)  # no id in the body: the response's id is the ce-id
        answer = infer(predictor, per_feature_request(x, spec.feature_names))
        sent[answer["id"]] = x

        x = feature_rows(spec, 2, 43)  # the client wants only labels; the log still has p
        answer = infer(predictor, matrix_request(x, id="log-labels", outputs=[{"name": "label"}]))
        assert [o["name"] for o in answer["outputs"]] == ["label"]
        sent["log-labels"] = x

        x = feature_rows(spec, 2, 44)
        body, header_length = binary_request(x, "log-binary")
        infer(predictor, body, **{"inference-header-content-length": header_length})
        sent["log-binary"] = x

        x = feature_rows(spec, 4, 45)
        assert grpc_infer(predictor, x, "log-grpc").id == "log-grpc"
        sent["log-grpc"] = x

        bad = httpx.post(
            f"{predictor.url}/v2/models/diecast/infer", content=matrix_request(x[:, :29], id="bad")
        )
        assert bad.status_code == 400  # a refused request is not logged

        rows = sum(len(v) for v in sent.values())
        collector.wait_for(lambda: len(read_logs(collector.home)) == rows)
        frame = read_logs(collector.home)
        assert set(frame["request_id"]) == set(sent)
        assert (frame["model_version"] == "1").all() and (frame["model_name"] == "diecast").all()
        assert (frame["inference_service"] == "diecast").all()
        assert (frame["component"] == "predictor").all()
        for request_id, x in sent.items():
            got = frame[frame["request_id"] == request_id].sort_values("row")
            assert list(got["row"]) == list(range(len(x)))  # one row per instance
            np.testing.assert_allclose(
                got[spec.feature_names].to_numpy(np.float64), x.astype(np.float64), rtol=1e-6
            )
            expected = model.predict(x)
            np.testing.assert_allclose(got["probability"], expected["probability"], rtol=1e-5)
            assert list(got["label"]) == list(expected["label"])
            assert (
                not pd.isna(got["request_time"]).any() and not pd.isna(got["response_time"]).any()
            )

        assert metric(predictor.url, "castml_logger_events_sent_total") == 2 * len(sent)
        for counter in ("refused", "rejected", "unsent"):
            assert metric(predictor.url, f"castml_logger_events_{counter}_total") == 0
        assert collector.metric("castml_collector_events_received_total") == 2 * len(sent)
    finally:
        predictor.stop()


def test_a_full_queue_never_fails_a_request_and_is_counted(
    store_env: dict[str, str], spec: ProjectSpec, tmp_path: Path
) -> None:
    env = {
        **store_env,
        "CASTML_LOGGER_URL": f"http://127.0.0.1:{free_port()}/",  # nothing listens there
        "CASTML_LOGGER_QUEUE_SIZE": "1",
    }
    predictor = start_server("predictor", env, tmp_path / "logs")
    try:
        for i in range(5):
            infer(predictor, matrix_request(feature_rows(spec, 1, i), id=f"q-{i}"))
        # 10 events; the queue holds 1 and the sender's retry loop at most 1 more.
        assert metric(predictor.url, "castml_logger_events_refused_total") >= 8
        assert metric(predictor.url, "castml_logger_events_sent_total") == 0
        assert metric(predictor.url, "castml_logger_queue_depth") <= 1
    finally:
        predictor.stop()


def test_unset_logger_exports_no_logger_metrics(stack: Stack) -> None:
    assert "castml_logger_" not in httpx.get(f"{stack.predictor.url}/metrics").text
