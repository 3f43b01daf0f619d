"""Payloads are logged at the predictor only, under the id the transformer's client saw.

Traffic goes through the transformer (over REST, and over gRPC to the predictor) into
one real collector. The transformer logs nothing; it forwards its request id (the
client's x-request-id, v2's `id`, or one it made and answers with), and the predictor
logs each request as exactly one request/response pair under that id. The delayed label
posted with the transformer's `request_id` joins those rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from castml.cli.local_processes import ServerProcess, start_server
from castml.runtime.ae_gbm import AeGbmModel
from castml.spec import ProjectSpec
from tests.support.collector_process import TOKEN, CollectorProcess, read_logs
from tests.unit.serving.support import valid_record

pytestmark = pytest.mark.integration


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    process = CollectorProcess(tmp_path / "collector-home").start()
    try:
        yield process
    finally:
        process.stop()


def logger_metrics(server: ServerProcess) -> str:
    return httpx.get(f"{server.url}/metrics").text


def logger_metric(server: ServerProcess, name: str) -> float:
    for line in logger_metrics(server).splitlines():
        if line.startswith(f"castml_logger_events_{name}_total{{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no castml_logger_events_{name}_total on {server.url}/metrics")


def post(server: ServerProcess, path: str, body: Any, **headers: str) -> dict[str, Any]:
    answer = httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_one_request_through_the_transformer_is_one_pair_logged_by_the_predictor(
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
    logs = tmp_path / "logs"
    servers = [start_server("predictor", env, logs, grpc=True)]
    try:
        predictor = servers[0]
        servers.append(start_server("transformer", env, logs, predictor=predictor))
        servers.append(
            start_server(
                "transformer", env, logs, predictor=predictor, predictor_protocol="grpc-v2"
            )
        )
        rest, grpc = servers[1], servers[2]
        names = spec.feature_names
        records = [valid_record(spec, seed) for seed in range(6)]
        sent: dict[str, list[dict[str, float]]] = {}  # request id -> its records

        answer = post(
            rest,
            "/v1/models/diecast:predict",
            {"features": records[0]},
            **{"x-request-id": "t-single"},
        )
        assert answer["request_id"] == "t-single"
        sent["t-single"] = records[:1]

        answer = post(rest, "/v1/models/diecast:predict", {"instances": records[1:4]})
        sent[answer["request_id"]] = records[1:4]  # an id the transformer made

        in_order = [records[4][n] for n in names]  # a list record, in spec order
        answer = post(
            rest, "/v1/models/diecast:predict", {"features": in_order}, **{"x-request-id": "t-list"}
        )
        sent["t-list"] = records[4:5]

        inputs = [
            {"name": n, "datatype": "FP32", "shape": [2], "data": [records[0][n], records[5][n]]}
            for n in names
        ]
        answer = post(rest, "/v2/models/diecast/infer", {"id": "t-v2", "inputs": inputs})
        assert answer["id"] == "t-v2"
        sent["t-v2"] = [records[0], records[5]]

        answer = post(
            grpc,
            "/v1/models/diecast:predict",
            {"instances": records[2:4]},
            **{"x-request-id": "g-batch"},
        )
        assert answer["request_id"] == "g-batch"
        sent["g-batch"] = records[2:4]

        answer = post(grpc, "/v1/models/diecast:predict", {"features": records[5]})
        sent[answer["request_id"]] = records[5:6]  # made by the gRPC transformer

        refused = httpx.post(
            f"{rest.url}/v1/models/diecast:predict", json={"features": {"Bogus": 1}}
        )
        assert refused.status_code == 400  # a refused request is logged by no one

        instances = sum(len(r) for r in sent.values())
        collector.wait_for(lambda: len(read_logs(collector.home)) >= instances)
        # Exactly one request/response pair per request, all from the predictor.
        collector.wait_for(
            lambda: collector.metric("castml_collector_events_received_total") >= 2 * len(sent)
        )
        assert collector.metric("castml_collector_events_received_total") == 2 * len(sent)
        assert logger_metric(predictor, "sent") == 2 * len(sent)
        for transformer in (rest, grpc):
            assert "castml_logger_" not in logger_metrics(transformer)  # it sends nothing
        frame = read_logs(collector.home)
        assert len(frame) == instances  # one row per instance, none twice
        assert set(frame["request_id"]) == set(sent)
        assert (frame["model_version"] == "1").all() and (frame["model_name"] == "diecast").all()
        model = AeGbmModel.load(model_store / "1" / "model")
        for request_id, rows in sent.items():
            x = np.asarray([[r[n] for n in names] for r in rows], dtype=np.float32)
            expected = model.predict(x)
            got = frame[frame["request_id"] == request_id].sort_values("row")
            assert list(got["row"]) == list(range(len(rows))), request_id
            np.testing.assert_allclose(got[names].to_numpy(np.float32), x, rtol=1e-6)
            np.testing.assert_allclose(got["probability"], expected["probability"], rtol=1e-6)
            assert list(got["label"]) == list(expected["label"]), request_id
            assert got["response_time"].notna().all()
        assert collector.metric("castml_collector_duplicates_total") == 0
        assert logger_metric(predictor, "refused") == logger_metric(predictor, "rejected") == 0

        # The delayed label, posted with the id the client got, joins the predictor's rows.
        labels = [{"request_id": "t-single", "label": 1}, {"request_id": "g-batch", "label": 0}]
        feedback = collector.client.post("/v1/feedback", json=labels).json()["results"]
        assert [r["known_request"] for r in feedback] == [True, True]
        collector.wait_for(lambda: len(read_logs(collector.home, "feedback")) == 2)
        joined = frame.merge(read_logs(collector.home, "feedback"), on="request_id")
        assert sorted(joined["request_id"]) == ["g-batch", "g-batch", "t-single"]
    finally:
        for server in reversed(servers):
            server.stop()
