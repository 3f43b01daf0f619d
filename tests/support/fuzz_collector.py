"""Hypothesis strategies for the collector: CloudEvents (binary and structured) and feedback.

Valid events are what the KServe logger sends (`castml.cli.logger_cloudevents`): v2
requests and responses, and the transformer's named-JSON bodies. Project and version
names never hold a path separator here: escaping the logs folder is issue 10 §3's own
test, and a fuzzer must not write files outside its temporary home.
"""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import strategies as st

from castml.protocol.cloudevents import REQUEST_TYPE, RESPONSE_TYPE, STRUCTURED_MEDIA
from tests.support.collector_process import TOKEN
from tests.support.fuzz_json import (
    JSON_TYPES,
    TOKEN_CHARS,
    Raw,
    content_type,
    encode,
    extra_headers,
    header_text,
    hostile_scalars,
    hostile_values,
    json_values,
    raw_mutation,
)
from tests.support.fuzz_request import FuzzRequest, body_of_kind
from tests.support.fuzz_serving import (
    HOSTILE_SHAPES,
    PROJECT,
    mutated_records_payload,
    mutated_v2,
    records_payload,
    valid_v2,
)

EVENT_IDS = st.text(TOKEN_CHARS, min_size=1, max_size=6)  # short: requests and responses meet
OTHER_PROJECTS = ("nosuch", "DIECAST", "diecast-kb", "..", ".", "dié", "a" * 200, "con")
HOSTILE_LABELS = (1e19, 2**63, 2**64, -(2**63) - 1, 10**30, 1e308, 0.5, -1, 2, True)


def safe_name(text: str) -> str:
    """No path separators, no NUL (see the module docstring)."""
    return text.replace("/", "").replace("\\", "").replace("\x00", "")


@st.composite
def project_name(draw: st.DrawFn) -> str:
    roll = draw(st.integers(0, 9))
    if roll < 7:
        return PROJECT
    if roll < 9:
        return draw(st.sampled_from(OTHER_PROJECTS))
    return safe_name(draw(header_text(30)).decode())


@st.composite
def v2_response(draw: st.DrawFn, n: int | None = None) -> dict[str, Any]:
    n = n if n is not None else draw(st.integers(1, 3))
    probability = draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
    return {
        "model_name": PROJECT,
        "model_version": draw(st.sampled_from(["1", "2"])),
        "id": draw(EVENT_IDS),
        "outputs": [
            {"name": "probability", "shape": [n], "datatype": "FP32", "data": probability},
            {
                "name": "label",
                "shape": [n],
                "datatype": "INT64",
                "data": [int(p >= 0.5) for p in probability],
            },
            {"name": "latent", "shape": [n, 2], "datatype": "FP32", "data": [0.0] * (2 * n)},
        ],
    }


@st.composite
def transformer_response(draw: st.DrawFn) -> dict[str, Any]:
    p = draw(st.floats(0, 1))
    single = {
        "prediction": {"class": "defect" if p >= 0.5 else "ok", "probability": p},
        "model_version": f"{PROJECT}/1",
        "request_id": draw(EVENT_IDS),
    }
    if draw(st.booleans()):
        return single
    return {"predictions": [single], "model_version": f"{PROJECT}/1"}


@st.composite
def mutated_response(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 4)) == 0:
        body = draw(transformer_response())
        prediction = (body.get("predictions") or [body])[0]["prediction"]
        prediction[draw(st.sampled_from(["class", "probability", "value"]))] = draw(
            hostile_values()
        )
        if draw(st.booleans()):
            body["model_version"] = draw(st.one_of(hostile_scalars(), st.just([])))
        return body
    body = draw(v2_response())
    outputs: list[dict[str, Any]] = body["outputs"]
    roll = draw(st.integers(0, 9))
    if roll == 0:  # labels that fit no int64, or are not labels
        outputs[1]["data"] = [draw(st.sampled_from(HOSTILE_LABELS))] * outputs[1]["shape"][0]
    elif roll == 1:
        outputs[draw(st.integers(0, 2))]["shape"] = draw(st.sampled_from(HOSTILE_SHAPES))
    elif roll == 2:
        outputs[draw(st.integers(0, 2))]["name"] = draw(hostile_values())
    elif roll == 3:
        outputs[draw(st.integers(0, 1))]["data"] = draw(hostile_values())
    elif roll == 4:
        outputs[0]["data"][0] = draw(hostile_values())
    elif roll == 5:
        outputs.pop(draw(st.integers(0, 2)))
    elif roll == 6:
        body["outputs"] = draw(hostile_values())
    elif roll == 7:
        body["model_version"] = draw(st.one_of(hostile_scalars().map(_no_paths), st.just([])))
    elif roll == 8:
        body["model_name"] = draw(st.one_of(hostile_scalars().map(_no_paths), st.just({})))
    else:
        outputs[1]["shape"] = [outputs[1]["shape"][0] + 1]
        outputs[1]["data"].append(1)
    return body


def _no_paths(value: Any) -> Any:
    return safe_name(value) if isinstance(value, str) else value


def request_data(valid: bool) -> st.SearchStrategy[Any]:
    if valid:
        return st.one_of(valid_v2(), records_payload(2))
    return st.one_of(mutated_v2(), mutated_records_payload(4))


def response_data(valid: bool) -> st.SearchStrategy[Any]:
    if valid:
        return st.one_of(v2_response(), v2_response(), transformer_response())
    return mutated_response()


@st.composite
def attributes(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "specversion": "1.0",
        "id": draw(EVENT_IDS),
        "source": f"http://localhost/{PROJECT}",
        "type": REQUEST_TYPE if kind == "request" else RESPONSE_TYPE,
        "inferenceservicename": draw(project_name()),
        "namespace": "default",
        "endpoint": "default",
        "component": draw(st.sampled_from(["predictor", "predictor", "transformer"])),
    }
    if draw(st.booleans()):
        attrs["time"] = "2026-01-01T00:00:00Z"
    return attrs


ATTRIBUTE_NAMES = ("specversion", "id", "source", "type", "inferenceservicename", "component")


@st.composite
def mutate_attributes(draw: st.DrawFn, attrs: dict[str, Any], as_json: bool) -> None:
    """Drop or spoil one or two attributes; structured mode may hold non-strings."""
    for _ in range(draw(st.integers(1, 2))):
        name = draw(st.sampled_from(ATTRIBUTE_NAMES))
        roll = draw(st.integers(0, 3))
        if roll == 0:
            attrs.pop(name, None)
        elif roll == 1:
            attrs[name] = draw(st.sampled_from(["", "0.3", "2.0", "request", REQUEST_TYPE + "x"]))
        elif as_json:
            value = draw(st.one_of(hostile_values(), st.just(["x"]), st.just({"a": 1})))
            attrs[name] = _no_paths(value)
        else:
            attrs[name] = safe_name(draw(header_text(40)).decode())


@st.composite
def event_parts(draw: st.DrawFn, as_json: bool) -> tuple[bool, dict[str, Any], Any]:
    """(valid, attributes, data) of one event half."""
    kind = draw(st.sampled_from(["request", "response"]))
    attrs = draw(attributes(kind))
    roll = draw(st.integers(0, 9))
    valid = roll < 4
    make = request_data if kind == "request" else response_data
    if roll < 7:
        data = draw(make(valid=valid))
    elif roll < 9:  # the other half's body, or random JSON
        data = draw(st.one_of(response_data(True), request_data(True), json_values()))
    else:
        data = draw(make(valid=True))
        draw(mutate_attributes(attrs, as_json))
    if valid and attrs["inferenceservicename"] != PROJECT:
        valid = False
    return valid, attrs, data


@st.composite
def auth_headers(draw: st.DrawFn) -> dict[str, bytes]:
    roll = draw(st.integers(0, 19))
    if roll == 7:
        return {}
    if roll == 13:
        return {"authorization": draw(st.sampled_from([b"Bearer wrong", b"Basic eA==", b"Bearer"]))}
    return {"authorization": f"Bearer {TOKEN}".encode()}


@st.composite
def events_binary(draw: st.DrawFn) -> FuzzRequest:
    """`POST /v1/events` (or `/`) in binary mode: attributes in `ce-*` headers."""
    valid, attrs, data = draw(event_parts(as_json=False))
    headers = {f"ce-{k}": str(v).encode("utf-8", "surrogatepass") for k, v in attrs.items()}
    headers = {k: v for k, v in headers.items() if v.strip() == v}
    kind, body = ("valid" if valid else "mutated"), encode(data, draw(st.booleans()))
    roll = draw(st.integers(0, 9))
    if roll == 0:
        kind, body = "raw", draw(raw_mutation(body))
    elif roll == 1:
        kind, body = "random", encode(draw(json_values()))
    media = draw(content_type((*JSON_TYPES, STRUCTURED_MEDIA)))
    if media is not None:
        headers["content-type"] = media.encode()
    headers.update(draw(auth_headers()))
    headers.update(draw(extra_headers()))
    path = draw(st.sampled_from(["/v1/events", "/v1/events", "/"]))
    return FuzzRequest("collector", path, body, headers, kind)


@st.composite
def data_fields(draw: st.DrawFn, data: Any) -> dict[str, Any]:
    """`data` as JSON, or as `data_base64` (valid, or not base64, or not a string)."""
    roll = draw(st.integers(0, 9))
    if roll < 6:
        return {"data": data}
    if roll < 8:
        return {"data_base64": base64.b64encode(encode(data)).decode()}
    hostile = st.one_of(
        hostile_values(),
        st.sampled_from(["!!!", "abc", "=", base64.b64encode(b"\xff\xfe").decode(), "e30"]),
        st.just(base64.b64encode(b"not json").decode()),
    )
    return {"data_base64": draw(hostile), **({"data": data} if draw(st.booleans()) else {})}


@st.composite
def events_structured(draw: st.DrawFn) -> FuzzRequest:
    """`POST /v1/events` in structured mode: one `application/cloudevents+json` document."""
    valid, attrs, data = draw(event_parts(as_json=True))
    fields = draw(data_fields(data))
    if "data" not in fields and not isinstance(fields["data_base64"], str):
        valid = False
    document: Any = {**attrs, "datacontenttype": "application/json", **fields}
    kind = "valid" if valid else "mutated"
    roll = draw(st.integers(0, 19))
    if roll == 0:
        document, kind = [document], "mutated"  # a batch, sent as one event
    elif roll == 1:
        document, kind = draw(json_values()), "random"
    body = encode(document, draw(st.booleans()))
    if roll == 2:
        kind, body = "raw", draw(raw_mutation(body))
    headers: dict[str, bytes] = {}
    media = draw(
        content_type(
            (STRUCTURED_MEDIA, STRUCTURED_MEDIA + "; charset=utf-8", "Application/CloudEvents+JSON")
        )
    )
    if media is not None:
        headers["content-type"] = media.encode()
    headers.update(draw(auth_headers()))
    headers.update(draw(extra_headers()))
    path = draw(st.sampled_from(["/v1/events", "/v1/events", "/"]))
    return FuzzRequest("collector", path, body, headers, kind)


# --- feedback ---------------------------------------------------------------------------

OBSERVED_AT = st.one_of(
    st.floats(1.6e9, 1.9e9),
    st.just("2026-01-02T03:04:05Z"),
    st.just("2026-01-02T03:04:05+09:00"),
)
HOSTILE_TIMES = (1e17, -1e17, 1e308, 2**63, 10**30, -1, 0, "2026-13-45", "", "99999-01-01", "now")


@st.composite
def feedback_item(draw: st.DrawFn) -> dict[str, Any]:
    item: dict[str, Any] = {
        "request_id": draw(EVENT_IDS),
        "label": draw(st.sampled_from([0, 1, True, False, 0.0, 1.0])),
    }
    if draw(st.booleans()):
        item["observed_at"] = draw(OBSERVED_AT)
    if draw(st.booleans()):
        item["project"] = PROJECT
    return item


@st.composite
def mutated_feedback_item(draw: st.DrawFn) -> Any:
    item = draw(feedback_item())
    for _ in range(draw(st.integers(1, 2))):
        field = draw(st.sampled_from(["request_id", "label", "observed_at", "project", "extra"]))
        roll = draw(st.integers(0, 3))
        if roll == 0:
            item.pop(field, None)
        elif field == "label" and roll == 1:
            item["label"] = draw(st.sampled_from([*HOSTILE_LABELS, Raw("NaN"), Raw("1e400")]))
        elif field == "observed_at" and roll == 1:
            item["observed_at"] = draw(st.sampled_from([*HOSTILE_TIMES, Raw("Infinity")]))
        elif field == "project":
            item["project"] = _no_paths(draw(st.one_of(hostile_scalars(), project_name())))
        else:
            item[field] = _no_paths(draw(hostile_values()))
    if draw(st.integers(0, 9)) == 0:
        return draw(hostile_scalars())
    return item


@st.composite
def feedback_valid(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 3)):
        return draw(feedback_item())
    return draw(st.lists(feedback_item(), min_size=1, max_size=5))


@st.composite
def feedback_mutated(draw: st.DrawFn) -> Any:
    roll = draw(st.integers(0, 9))
    if roll < 6:
        return draw(mutated_feedback_item())
    if roll < 8:
        return draw(st.lists(st.one_of(feedback_item(), mutated_feedback_item()), max_size=4))
    if roll == 8:
        return []
    return [draw(feedback_item())] * draw(st.just(1000))


@st.composite
def feedback(draw: st.DrawFn) -> FuzzRequest:
    """`POST /v1/feedback`: one `{request_id, label, observed_at}` object or a list."""
    kind, body = draw(body_of_kind(feedback_valid(), feedback_mutated()))
    headers = draw(auth_headers())
    media = draw(content_type())
    if media is not None:
        headers["content-type"] = media.encode()
    headers.update(draw(extra_headers()))
    return FuzzRequest("collector", "/v1/feedback", body, headers, kind)
