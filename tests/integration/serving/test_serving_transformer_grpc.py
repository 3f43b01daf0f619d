"""Transformer -> predictor over v2 gRPC (`--predictor_protocol grpc-v2`), against v2 REST.

The same predictor answers both transformers, so every answer must be the same but for
the time it took; refusals keep their status across the gRPC hop, and a predictor that
is down is a 503 that says so, whichever protocol the transformer speaks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from castml.cli.local_processes import ServerProcess, free_port, start_server
from castml.spec import ProjectSpec
from tests.integration.serving.conftest import Stack
from tests.unit.serving.support import valid_record

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def grpc_transformer(
    stack: Stack, store_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    logs = tmp_path_factory.mktemp("grpc-transformer-logs")
    server = start_server(
        "transformer", store_env, logs, predictor=stack.predictor, predictor_protocol="grpc-v2"
    )
    try:
        yield server
    finally:
        server.stop()


def _post(url: str, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, timeout=30)


def _timeless(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer without its timings, which differ between any two calls."""
    out = {k: v for k, v in answer.items() if k != "processing_time_ms"}
    if "predictions" in out:
        out["predictions"] = [_timeless(p) for p in out["predictions"]]
    return out


def test_grpc_and_rest_give_the_same_answers(
    stack: Stack, grpc_transformer: ServerProcess, spec: ProjectSpec
) -> None:
    records = [valid_record(spec, seed) for seed in range(5)]
    named = [
        {"name": n, "datatype": "FP32", "shape": [2], "data": [records[0][n], records[1][n]]}
        for n in spec.feature_names
    ]
    calls: list[tuple[str, Any, dict[str, str]]] = [
        ("/v1/models/diecast:predict", {"features": records[0]}, {"x-request-id": "same-1"}),
        ("/v1/models/diecast:predict", {"instances": records}, {"x-request-id": "same-2"}),
        ("/v2/models/diecast/infer", {"id": "same-3", "inputs": named}, {}),
        ("/v2/models/diecast/versions/1/infer", {"id": "same-4", "inputs": named}, {}),
    ]
    for path, body, headers in calls:
        rest = httpx.post(f"{stack.transformer.url}{path}", json=body, headers=headers)
        grpc = httpx.post(f"{grpc_transformer.url}{path}", json=body, headers=headers)
        assert rest.status_code == grpc.status_code == 200, (rest.text, grpc.text)
        assert _timeless(grpc.json()) == _timeless(rest.json())
        assert grpc.headers["x-model-version"] == rest.headers["x-model-version"] == "1"
    assert httpx.get(f"{grpc_transformer.url}/v2/health/ready").json() == {"ready": True}
    meta = httpx.get(f"{grpc_transformer.url}/v2/models/diecast").json()
    assert meta["versions"] == ["1"] and meta["inputs"][0]["shape"] == [-1, len(spec.features)]


def test_refusals_keep_their_status_across_the_grpc_hop(
    stack: Stack, grpc_transformer: ServerProcess, spec: ProjectSpec
) -> None:
    inputs = [
        {"name": n, "datatype": "FP32", "shape": [1], "data": [v]}
        for n, v in valid_record(spec, 9).items()
    ]
    for url in (stack.transformer.url, grpc_transformer.url):
        # Version 7 is not the one the predictor serves: its 404 reaches the client as is.
        answer = _post(url, "/v2/models/diecast/versions/7/infer", {"inputs": inputs})
        assert answer.status_code == 404, answer.text
        assert "version 7 is not loaded" in answer.json()["error"]
        # The transformer's own validation never reaches the predictor.
        answer = _post(url, "/v1/models/diecast:predict", {"features": {"Bogus": 1}})
        assert answer.status_code == 400


@pytest.mark.parametrize("protocol", ["v2", "grpc-v2"])
def test_a_predictor_that_is_down_is_a_503_naming_it(
    protocol: str, store_env: dict[str, str], spec: ProjectSpec, tmp_path: Path
) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = {
        **store_env,
        "CASTML_PREDICTOR_URL": dead,
        "CASTML_PREDICTOR_PROTOCOL": protocol,
        "CASTML_PREDICTOR_TIMEOUT_S": "5",
    }
    transformer = start_server("transformer", env, tmp_path)
    try:
        answer = _post(
            transformer.url, "/v1/models/diecast:predict", {"features": valid_record(spec, 1)}
        )
        assert answer.status_code == 503, answer.text
        error = answer.json()["error"]
        assert dead in error and ("unreachable" in error or "unavailable" in error)
        assert httpx.get(f"{transformer.url}/v2/health/ready").status_code == 503
    finally:
        transformer.stop()
