"""The transformer's payload log beside the predictor's, into one real collector.

Traffic goes through the transformer (over REST, and over gRPC to the predictor);
both servers log every request under the id the client gets back. The collector keeps
one row per instance per component, never pairs one component's half with the
other's, and the drift window reads one component, so nothing counts twice; the
delayed label posted with the transformer's `request_id` joins the predictor's rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from castml.cli.local_processes import ServerProcess, start_server
from castml.runtime.ae_gbm import AeGbmModel
from castml.spec import ProjectSpec
from monitoring.window import Window, read_labels, read_traffic
from tests.integration.monitoring.collector_process import TOKEN, CollectorProcess, read_logs
from tests.unit.serving.support import valid_record

pytestmark = pytest.mark.integration


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    process = CollectorProcess(tmp_path / "collector-home").start()
    try:
        yield process
    finally:
        process.stop()


def logger_metric(server: ServerProcess, name: str) -> float:
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith(f"castml_logger_events_{name}_total{{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no castml_logger_events_{name}_total on {server.url}/metrics")


def post(server: ServerProcess, path: str, body: Any, **headers: str) -> dict[str, Any]:
    answer = httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_transformer_and_predictor_rows_stay_apart_and_feedback_joins(
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
        sent["t-v2"] = [records[0], records[5]]

        answer = post(
            grpc,
            "/v1/models/diecast:predict",
            {"instances": records[2:4]},
            **{"x-request-id": "g-batch"},
        )
        sent["g-batch"] = records[2:4]

        refused = httpx.post(
            f"{rest.url}/v1/models/diecast:predict", json={"features": {"Bogus": 1}}
        )
        assert refused.status_code == 400  # a refused request is logged by no one

        instances = sum(len(r) for r in sent.values())
        collector.wait_for(lambda: len(read_logs(collector.home)) == 2 * instances)
        frame = read_logs(collector.home)
        assert set(frame["request_id"]) == set(sent)
        assert (frame["model_version"] == "1").all() and (frame["model_name"] == "diecast").all()
        model = AeGbmModel.load(model_store / "1" / "model")
        for request_id, rows in sent.items():
            x = np.asarray([[r[n] for n in names] for r in rows], dtype=np.float32)
            expected = model.predict(x)
            for component in ("predictor", "transformer"):
                got = frame[
                    (frame["request_id"] == request_id) & (frame["component"] == component)
                ].sort_values("row")
                assert list(got["row"]) == list(range(len(rows))), (request_id, component)
                np.testing.assert_allclose(got[names].to_numpy(np.float32), x, rtol=1e-6)
                # the transformer answers probabilities rounded to 6 places
                np.testing.assert_allclose(got["probability"], expected["probability"], atol=1e-6)
                assert list(got["label"]) == list(expected["label"]), (request_id, component)
                assert got["response_time"].notna().all()
        assert collector.metric("castml_collector_duplicates_total") == 0
        for server in servers:
            assert logger_metric(server, "refused") == logger_metric(server, "rejected") == 0
        assert logger_metric(rest, "sent") == 2 * 4 and logger_metric(grpc, "sent") == 2 * 1

        # The delayed label, posted with the id the client got, joins the predictor's rows.
        labels = [{"request_id": "t-single", "label": 1}, {"request_id": "g-batch", "label": 0}]
        feedback = collector.client.post("/v1/feedback", json=labels).json()["results"]
        assert [r["known_request"] for r in feedback] == [True, True]
        collector.wait_for(lambda: len(read_logs(collector.home, "feedback")) == 2)
        window = Window.ending(timedelta(hours=1))
        logs_root = collector.home / "logs"
        traffic = read_traffic(logs_root, "diecast", "1", window)
        assert len(traffic) == instances and (traffic["component"] == "predictor").all()
        joined = traffic.merge(read_labels(logs_root, "diecast", window), on="request_id")
        assert sorted(joined["request_id"]) == ["g-batch", "g-batch", "t-single"]
        transformer_rows = read_traffic(logs_root, "diecast", "1", window, "transformer")
        assert len(transformer_rows) == instances
        assert len(read_traffic(logs_root, "diecast", "1", window, None)) == 2 * instances
    finally:
        for server in reversed(servers):
            server.stop()
