"""Every malformed request answers 4xx with a clear message, never 5xx (fuzzed too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from castml.spec import ProjectSpec, load_spec
from serving.version_store import smoke_rows
from tests.integration.serving.conftest import Stack
from tests.unit.serving.support import valid_record

pytestmark = pytest.mark.integration

FEATURES = {
    "inputs": [
        {
            "name": "x",
            "datatype": "FP32",
            "shape": [1, 30],
            "data": smoke_rows(load_spec("diecast"))[0].tolist(),
        }
    ]
}

CASES: list[tuple[str, str, str, bytes, int, str]] = [
    # (server, method, path, body, status, words in the message)
    ("predictor", "POST", "/v2/models/diecast/infer", b"", 400, "empty"),
    ("predictor", "POST", "/v2/models/diecast/infer", b"{not json", 400, "not valid JSON"),
    ("predictor", "POST", "/v2/models/diecast/infer", b"[]", 400, "JSON object"),
    ("predictor", "POST", "/v2/models/nope/infer", b"{}", 404, "unknown model"),
    (
        "predictor",
        "POST",
        "/v2/models/diecast/versions/9/infer",
        b"{}",
        404,
        "version 9 is not loaded",
    ),
    ("predictor", "GET", "/v2/models/diecast/versions/9", b"", 404, "version 9"),
    ("predictor", "GET", "/v2/models/diecast/infer", b"", 405, "not allowed"),
    ("predictor", "POST", "/nowhere", b"", 404, "no route"),
    (
        "predictor",
        "POST",
        "/v2/repository/models/diecast/load",
        b'{"parameters": {"version": "77"}}',
        404,
        "no version 77",
    ),
    (
        "predictor",
        "POST",
        "/v2/repository/models/diecast/load",
        b'{"parameters": {"version": true}}',
        400,
        "version",
    ),
    ("transformer", "POST", "/v1/models/diecast:predict", b"", 400, "empty"),
    ("transformer", "POST", "/v1/models/diecast:predict", b"\xff\xfe", 400, "not valid JSON"),
    ("transformer", "POST", "/v1/models/diecast:predict", b'{"rows": []}', 400, "features"),
    ("transformer", "POST", "/v1/models/diecast:predict", b'{"instances": []}', 400, "empty"),
    ("transformer", "POST", "/v1/models/diecast:predict", b'{"instances": {}}', 400, "list"),
    ("transformer", "POST", "/v1/models/diecast:predict", b'{"features": 3}', 400, "object keyed"),
    ("transformer", "POST", "/v1/models/other:predict", b'{"features": {}}', 404, "unknown model"),
    ("transformer", "POST", "/v2/models/diecast/versions/9/infer", None, 404, "version 9"),  # type: ignore[list-item]
    ("explainer", "POST", "/v1/models/diecast:explain", b"{}", 400, "features"),
    ("explainer", "POST", "/v1/models/other:explain", b"{}", 404, "unknown model"),
]


def body_of(raw: bytes | None) -> bytes:
    import orjson

    return orjson.dumps(FEATURES) if raw is None else raw


@pytest.mark.parametrize(("server", "method", "path", "raw", "status", "words"), CASES)
def test_bad_requests(
    stack: Stack, server: str, method: str, path: str, raw: bytes | None, status: int, words: str
) -> None:
    url = getattr(stack, server).url + path
    response = httpx.request(method, url, content=body_of(raw))
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


# Found by the endpoint fuzzing (tests/integration/test_fuzz_endpoints.py): each was a 500.
LONE_SURROGATE = b'{"features": {"\\ud800": 1}}'
LONE_SURROGATE_BYTES = b'{"features": {"\xed\xa0\x80": 1}}'
SURROGATE_INPUT = b'{"inputs":[{"name":"\\ud800","shape":[1],"datatype":"FP32","data":[1]}]}'


@pytest.mark.parametrize(
    ("server", "path", "raw"),
    [
        ("transformer", "/v1/models/diecast:predict", LONE_SURROGATE),
        ("transformer", "/v1/models/diecast:predict", LONE_SURROGATE_BYTES),
        ("transformer", "/v2/models/diecast/infer", SURROGATE_INPUT),
        ("explainer", "/v1/models/diecast:explain", LONE_SURROGATE),
        ("predictor", "/v2/models/diecast/infer", SURROGATE_INPUT),
    ],
)
def test_text_that_is_not_unicode_is_400(stack: Stack, server: str, path: str, raw: bytes) -> None:
    response = httpx.post(getattr(stack, server).url + path, content=raw)
    assert response.status_code == 400, response.text
    assert "not valid JSON" in response.json()["error"]


def test_a_binary_header_length_in_unicode_digits_is_400(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.predictor.url}/v2/models/diecast/infer",
        content=b'{"inputs": []}',
        headers={
            "content-type": "application/octet-stream",
            "inference-header-content-length": "²".encode(),
        },
    )
    assert response.status_code == 400, response.text
    assert "inference-header-content-length" in response.json()["error"]


def test_oversized_body_is_413(stack: Stack) -> None:
    big = b'{"inputs": [' + b" " * (5 * 1024 * 1024) + b"]}"
    for server in (stack.predictor, stack.transformer):
        response = httpx.post(f"{server.url}/v2/models/diecast/infer", content=big)
        assert response.status_code == 413 and "limit" in response.json()["error"]


def test_oversized_chunked_body_is_413(stack: Stack) -> None:
    def chunks() -> Any:
        for _ in range(80):
            yield b" " * 65536

    response = httpx.post(f"{stack.predictor.url}/v2/models/diecast/infer", content=chunks())
    assert response.status_code == 413


def test_anchors_without_alibi_is_a_clear_4xx(stack: Stack, spec: ProjectSpec) -> None:
    response = httpx.post(
        f"{stack.explainer.url}/v1/models/diecast:explain",
        json={"features": valid_record(spec), "method": "anchors"},
        timeout=30,
    )
    assert response.status_code == 422
    assert "alibi" in response.json()["error"] and "optional extra" in response.json()["error"]


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
)
json_any = st.recursive(
    json_leaf,
    lambda i: st.lists(i, max_size=3) | st.dictionaries(st.text(max_size=8), i, max_size=3),
    max_leaves=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.one_of(
        json_any,
        st.fixed_dictionaries(
            {"features": st.dictionaries(st.sampled_from(["Process_Temperature", "x"]), json_any)}
        ),
        st.fixed_dictionaries({"instances": st.lists(json_any, max_size=3)}),
        st.fixed_dictionaries(
            {
                "inputs": st.lists(
                    st.dictionaries(
                        st.sampled_from(["name", "shape", "datatype", "data"]), json_any
                    ),
                    max_size=3,
                )
            }
        ),
    ),
    target=st.sampled_from(["/v1/models/diecast:predict", "/v2/models/diecast/infer"]),
)
def test_fuzzed_bodies_never_5xx(stack: Stack, body: Any, target: str) -> None:
    import orjson

    response = httpx.post(stack.transformer.url + target, content=orjson.dumps(body))
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=200))
def test_fuzzed_bytes_never_5xx(stack: Stack, raw: bytes) -> None:
    response = httpx.post(f"{stack.predictor.url}/v2/models/diecast/infer", content=raw)
    assert 400 <= response.status_code < 500, response.text


ENDPOINTS = [
    ("predictor", "/v2/models/diecast/infer"),
    ("transformer", "/v1/models/diecast:predict"),
    ("transformer", "/v2/models/diecast/infer"),
    ("explainer", "/v1/models/diecast:explain"),
]


@pytest.mark.parametrize(("server", "path"), ENDPOINTS)
@pytest.mark.parametrize(
    ("media", "raw"),
    [
        ("text/plain", b"Process_Temperature=700"),
        ("application/xml", b"<features><Process_Temperature>700</Process_Temperature></features>"),
        ("image/png", b"\x89PNG\r\n\x1a\n\x00\x00"),
    ],
)
def test_a_body_that_is_not_json_is_415(
    stack: Stack, server: str, path: str, media: str, raw: bytes
) -> None:
    response = httpx.post(
        getattr(stack, server).url + path, content=raw, headers={"content-type": media}
    )
    assert response.status_code == 415, response.text
    assert media in response.json()["error"] and response.json()["type"]


@pytest.mark.parametrize(
    ("server", "path", "allowed"),
    [
        ("predictor", "/v2/models/diecast/infer", "POST"),
        ("predictor", "/v2/health/ready", "GET"),
        ("transformer", "/v1/models/diecast:predict", "POST"),
        ("explainer", "/v1/models/diecast:explain", "POST"),
    ],
)
def test_405_names_the_allowed_methods(stack: Stack, server: str, path: str, allowed: str) -> None:
    response = httpx.put(getattr(stack, server).url + path, content=b"{}")
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allowed
    assert response.json()["type"] == "MethodNotAllowedError"


def nan_bodies(spec: ProjectSpec) -> list[tuple[str, str, bytes, str]]:
    """(server, path, body, the field it must name): NaN/Infinity tokens as json.dumps writes."""
    import json

    record: dict[str, Any] = valid_record(spec, 3)
    record["Process_Pressure"] = float("nan")
    features = json.dumps({"features": record}).encode()
    row: list[float] = list(valid_record(spec, 3).values())  # in spec order, all finite
    row[spec.feature_names.index("Sensor_Vibration")] = float("inf")
    matrix = json.dumps(
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 30], "data": row}]}
    ).encode()
    named = json.dumps(
        {
            "inputs": [
                {"name": n, "datatype": "FP32", "shape": [1], "data": [record[n]]}
                for n in spec.feature_names
            ]
        }
    ).encode()
    assert b"NaN" in features and b"Infinity" in matrix and b"NaN" in named
    return [
        ("predictor", "/v2/models/diecast/infer", matrix, "Sensor_Vibration"),
        ("predictor", "/v2/models/diecast/infer", named, "Process_Pressure"),
        ("transformer", "/v1/models/diecast:predict", features, "Process_Pressure"),
        ("transformer", "/v2/models/diecast/infer", named, "Process_Pressure"),
        ("transformer", "/v2/models/diecast/infer", matrix, "Sensor_Vibration"),
        ("explainer", "/v1/models/diecast:explain", features, "Process_Pressure"),
        ("explainer", "/v2/models/diecast/explain", matrix, "Sensor_Vibration"),
    ]


def test_nan_and_infinity_tokens_are_400_naming_the_field(stack: Stack, spec: ProjectSpec) -> None:
    for server, path, body, field in nan_bodies(spec):
        response = httpx.post(
            getattr(stack, server).url + path,
            content=body,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 400, (server, path, response.text)
        answer = response.json()
        assert [d["field"] for d in answer["details"]] == [field], (server, path, answer)
        assert field in answer["error"]


def test_a_non_ascii_request_id_comes_back_intact(stack: Stack, spec: ProjectSpec) -> None:
    request_id = "요청-β-1"
    headers = {"x-request-id": request_id.encode(), "content-type": b"application/json"}
    record = valid_record(spec, 4)
    calls = [
        (stack.transformer, "/v1/models/diecast:predict", {"features": record}),
        (stack.explainer, "/v1/models/diecast:explain", {"features": record, "chart": False}),
        (stack.predictor, "/v2/models/diecast/infer", FEATURES),
    ]
    import orjson

    for server, path, body in calls:
        response = httpx.post(
            server.url + path, content=orjson.dumps(body), headers=headers, timeout=60
        )
        assert response.status_code == 200, response.text
        assert response.headers.get_list("x-request-id") == [request_id], path
        answer = response.json()
        assert answer.get("request_id", answer.get("id")) == request_id, path


def test_no_internal_path_in_any_error(
    stack: Stack, own_predictor: Any, model_store: Path, spec: ProjectSpec
) -> None:
    """Refusals name the problem, never a staging, cache or store path of this machine."""
    from tests.unit.serving.support import BROKEN_VERSION, WRONG_FEATURES_VERSION

    answers = [
        httpx.post(
            f"{own_predictor.url}/v2/repository/models/diecast/load",
            json={"parameters": {"version": version}},
            timeout=60,
        )
        for version in (BROKEN_VERSION, WRONG_FEATURES_VERSION, "77")
    ]
    answers += [
        httpx.request(method, getattr(stack, server).url + path, content=body_of(raw))
        for server, method, path, raw, _, _ in CASES
    ]
    for answer in answers:
        assert 400 <= answer.status_code < 500, answer.text
        error = answer.json()["error"]
        for internal in (str(model_store), str(model_store.parent), "/tmp/", "serving-cache"):
            assert internal not in error, error


def test_an_empty_version_in_a_load_call_is_400(own_predictor: Any) -> None:
    for body in ({"parameters": {"version": ""}}, {"version": " "}):
        answer = httpx.post(
            f"{own_predictor.url}/v2/repository/models/diecast/load", json=body, timeout=60
        )
        assert answer.status_code == 400, answer.text
        assert "version" in answer.json()["error"]
