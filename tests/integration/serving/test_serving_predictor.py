"""The predictor over the wire, queried with kserve's own v2 clients (REST and gRPC)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

from castml.runtime.ae_gbm import AeGbmModel
from castml.spec import ProjectSpec
from tests.integration.serving.conftest import Stack
from tests.unit.serving.support import feature_rows

pytestmark = pytest.mark.integration


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def grpc_infer(stack: Stack, tensor: InferInput) -> Any:
    """One gRPC ModelInfer of `tensor` on the stack's predictor (no retries)."""

    async def infer() -> Any:
        client = InferenceGRPCClient(f"127.0.0.1:{stack.predictor.grpc_port}", retries=0)
        try:
            return await client.infer(InferRequest("diecast", [tensor]))
        finally:
            await client.close()

    return run(infer())


def test_metadata_names_the_real_tensors_and_version(stack: Stack, spec: ProjectSpec) -> None:
    response = httpx.get(f"{stack.predictor.url}/v2/models/diecast")
    meta = response.json()
    assert response.headers["x-model-version"] == "1" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 30]}]
    assert {o["name"]: (o["datatype"], o["shape"]) for o in meta["outputs"]} == {
        "probability": ("FP32", [-1]),
        "label": ("INT64", [-1]),
        "latent": ("FP32", [-1, 12]),
    }
    assert meta["parameters"]["feature_names"] == spec.feature_names
    server = httpx.get(f"{stack.predictor.url}/v2").json()
    assert "model_repository" in server["extensions"]
    assert httpx.get(f"{stack.predictor.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{stack.predictor.url}/v2/models/diecast/versions/1/ready").json()["ready"]


def test_rest_client_both_layouts_match_the_model(
    stack: Stack, spec: ProjectSpec, model_store: Any
) -> None:
    x = feature_rows(spec, 5, 31)
    expected = AeGbmModel.load(model_store / "1" / "model").predict(x)
    matrix = InferInput("features", list(x.shape), "FP32")
    matrix.set_data_from_numpy(x)
    per_feature = []
    for j, name in enumerate(spec.feature_names):
        tensor = InferInput(name, [len(x)], "FP32")
        tensor.set_data_from_numpy(np.ascontiguousarray(x[:, j]))
        per_feature.append(tensor)

    async def infer(inputs: list[InferInput]) -> Any:
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            headers: dict[str, str] = {}
            result = await client.infer(
                stack.predictor.url,
                InferRequest("diecast", inputs, request_id="r-1"),
                model_name="diecast",
                response_headers=headers,
            )
            return result, headers
        finally:
            await client.close()

    for inputs in ([matrix], per_feature):
        result, headers = run(infer(inputs))
        # kserve's REST client drops the body's model_version; the header carries it too
        assert headers["x-model-version"] == "1"
        assert result.id == "r-1"
        out = {o.name: o.as_numpy() for o in result.outputs}
        np.testing.assert_allclose(out["probability"], expected["probability"], rtol=1e-6)
        np.testing.assert_array_equal(out["label"], expected["label"])
        assert out["latent"].shape == (5, 12) and out["latent"].dtype == np.float32


def test_binary_tensor_extension_from_the_rest_client(stack: Stack, spec: ProjectSpec) -> None:
    x = feature_rows(spec, 3, 32)
    tensor = InferInput("features", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)

    async def infer() -> Any:
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            return await client.infer(
                stack.predictor.url, InferRequest("diecast", [tensor]), model_name="diecast"
            )
        finally:
            await client.close()

    result = run(infer())
    assert result.outputs[0].as_numpy().shape == (3,)


def test_grpc_client(stack: Stack, spec: ProjectSpec, model_store: Any) -> None:
    x = feature_rows(spec, 4, 33)
    expected = AeGbmModel.load(model_store / "1" / "model").predict(x)
    tensor = InferInput("features", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)

    async def infer() -> Any:
        client = InferenceGRPCClient(f"127.0.0.1:{stack.predictor.grpc_port}", retries=0)
        try:
            assert await client.is_server_live() and await client.is_server_ready()
            assert await client.is_model_ready("diecast")
            return await client.infer(InferRequest("diecast", [tensor], request_id="g-1"))
        finally:
            await client.close()

    result = run(infer())
    assert result.model_version == "1" and result.id == "g-1"
    out = {o.name: o.as_numpy() for o in result.outputs}
    np.testing.assert_allclose(out["probability"], expected["probability"], rtol=1e-6)
    assert out["latent"].shape == (4, 12)


def test_grpc_bad_input_is_invalid_argument(stack: Stack) -> None:
    import grpc

    tensor = InferInput("features", [1, 29], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 29), np.float32))

    with pytest.raises(grpc.RpcError) as info:
        grpc_infer(stack, tensor)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "30 columns" in info.value.details()  # type: ignore[attr-defined]


def test_metrics_have_per_stage_histograms(stack: Stack, spec: ProjectSpec) -> None:
    x = feature_rows(spec, 1, 34)
    body = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 30], "data": x.ravel().tolist()}]
    }
    response = httpx.post(f"{stack.predictor.url}/v2/models/diecast/infer", json=body)
    assert response.status_code == 200 and response.json()["model_version"] == "1"
    text = httpx.get(f"{stack.predictor.url}/metrics").text
    for stage in ("decode", "predict", "encode", "total"):
        assert (
            f'castml_serving_stage_seconds_bucket{{le="0.001",server="predictor",stage="{stage}"}}'
            in text
        )
    assert (
        'castml_serving_model_version{project="diecast",server="predictor",version="1"} 1.0' in text
    )


def stage_counts(url: str) -> dict[str, float]:
    """The predictor's per-stage observation counts and its model calls' row count."""
    counts: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("castml_serving_stage_seconds_count{"):
            stage = line.split('stage="', 1)[1].split('"', 1)[0]
            counts[stage] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("castml_serving_batch_rows_sum{"):
            counts["batch_rows"] = float(line.rsplit(" ", 1)[1])
    return counts


def test_grpc_infer_goes_through_the_micro_batcher_and_the_stage_metrics(
    stack: Stack, spec: ProjectSpec
) -> None:
    """gRPC and REST share one core: the same stages are timed and the same batcher runs."""
    x = feature_rows(spec, 3, 35)
    tensor = InferInput("features", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    before = stage_counts(stack.predictor.url)

    async def infer(n: int) -> list[Any]:
        client = InferenceGRPCClient(f"127.0.0.1:{stack.predictor.grpc_port}", retries=0)
        try:
            calls = [client.infer(InferRequest("diecast", [tensor])) for _ in range(n)]
            return list(await asyncio.gather(*calls))
        finally:
            await client.close()

    results = run(infer(4))
    assert all(r.model_version == "1" and r.id for r in results)  # an id is made when none
    after = stage_counts(stack.predictor.url)
    for stage in ("decode", "predict", "encode", "total"):
        grew = after[stage] - before.get(stage, 0.0)
        assert (1 if stage == "predict" else 4) <= grew <= 4, (stage, grew)
    # every row went through the micro-batcher's model calls
    assert after["batch_rows"] - before.get("batch_rows", 0.0) == 4 * 3


def test_rest_and_grpc_replies_carry_the_threshold(stack: Stack, spec: ProjectSpec) -> None:
    threshold = httpx.get(f"{stack.predictor.url}/v2/models/diecast").json()["parameters"][
        "threshold"
    ]
    x = feature_rows(spec, 1, 36)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 30], "data": x.ravel()}]}
    response = httpx.post(
        f"{stack.predictor.url}/v2/models/diecast/infer",
        content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
    )
    assert response.json()["parameters"] == {"threshold": threshold}
    tensor = InferInput("features", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)

    assert float(grpc_infer(stack, tensor).parameters["threshold"].string_param) == threshold


def test_the_rest_client_reads_the_threshold_from_the_infer_reply(
    stack: Stack, spec: ProjectSpec
) -> None:
    """The transformer's REST client needs no metadata call to know a version's threshold."""
    from serving.predictor_client import PredictorClient

    threshold = httpx.get(f"{stack.predictor.url}/v2/models/diecast").json()["parameters"][
        "threshold"
    ]

    async def infer() -> Any:
        client = PredictorClient(stack.predictor.url, "diecast", 10.0)
        try:
            return await client.infer(feature_rows(spec, 2, 37), "thr-1")
        finally:
            await client.close()

    reply = run(infer())
    assert reply.model_version == "1" and reply.threshold == pytest.approx(threshold)
    assert not hasattr(PredictorClient, "model_threshold")
