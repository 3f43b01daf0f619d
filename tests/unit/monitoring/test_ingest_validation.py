"""Ingest refuses, before the 202, what the writer could not write (issue 10 §1, §3, §4, §8).

Every answer is a 4xx in the one error body shape `{"error", "type", "details"}` that
names the problem; nothing refused is counted as received.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from castml.cli.logger_cloudevents import binary_event, structured_event, v2_request, v2_response
from castml.protocol.cloudevents import REQUEST_TYPE, STRUCTURED_MEDIA
from castml.spec import load_spec
from monitoring.collector_app import build_app
from monitoring.settings import CollectorSettings

TOKEN = "unit-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
FEATURES = load_spec("diecast").feature_names
Client = httpx.AsyncClient


def _serve(tmp_path: Path, check: Callable[[Client], Awaitable[None]], accepted: int = 0) -> None:
    """Run `check` against a collector app in process; then `accepted` events were received."""
    settings = CollectorSettings.model_validate({"home": tmp_path, "collector_token": TOKEN})
    app = build_app(settings)

    async def run() -> None:
        await app.collector.start()
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
                await check(client)
                metrics = (await client.get("/metrics")).text
                received = [
                    float(line.rsplit(" ", 1)[1])
                    for line in metrics.splitlines()
                    if line.startswith("castml_collector_events_received_total{")
                ]
                assert sum(received) == accepted
        finally:
            await app.collector.stop()

    asyncio.run(run())


def _structured(**document: Any) -> tuple[dict[str, str], bytes]:
    base = {"specversion": "1.0", "id": "a", "source": "s", "type": REQUEST_TYPE}
    return {"content-type": STRUCTURED_MEDIA}, orjson.dumps({**base, **document})


def _request(rows: int = 1) -> dict[str, Any]:
    return v2_request(np.ones((rows, len(FEATURES))), FEATURES)


def _response(**output: Any) -> dict[str, Any]:
    body = v2_response(np.array([0.3]), "diecast", "1", "a")
    body["outputs"] = [{**o, **output} if o["name"] == "label" else o for o in body["outputs"]]
    return body


def _named_tensor_request(name: Any) -> dict[str, Any]:
    body = _request()
    body["inputs"][0]["name"] = name
    body["inputs"].append({**body["inputs"][0], "name": "second"})
    return body


# The six causes of the 500s in issue 10 §4, each as the collector received it.
CAUSES = {
    "data_base64 not a string": _structured(data_base64=5),
    "data_base64 not base64": _structured(data_base64="@@not base64@@"),
    "label outside int64": binary_event("response", "a", "diecast", _response(data=[1e19])),
    "shape not a list of integers": binary_event(
        "request", "a", "diecast", {"inputs": [{**_request()["inputs"][0], "shape": ["1", 30]}]}
    ),
    "tensor name a list (request)": binary_event(
        "request", "a", "diecast", _named_tensor_request(["x"])
    ),
    "tensor name a dict (response)": binary_event(
        "response", "a", "diecast", _response(name={"label": 1})
    ),
    "structured type a list": _structured(type=["x"]),
    "structured type a dict": _structured(type={"a": 1}),
}
NAMED = {
    "data_base64 not a string": "data_base64",
    "data_base64 not base64": "base64",
    "label outside int64": "int64",
    "shape not a list of integers": "shape",
    "tensor name a list (request)": "name",
    "tensor name a dict (response)": "name",
    "structured type a list": "type",
    "structured type a dict": "type",
}


@pytest.mark.parametrize("cause", list(CAUSES))
def test_each_malformed_cloudevent_answers_400_naming_the_problem(
    tmp_path: Path, cause: str
) -> None:
    headers, body = CAUSES[cause]

    async def check(client: Client) -> None:
        answer = await client.post("/", headers={**headers, **AUTH}, content=body)
        assert answer.status_code == 400, answer.text
        payload = answer.json()
        assert set(payload) == {"error", "type", "details"}
        assert NAMED[cause] in payload["error"]

    _serve(tmp_path, check)


def test_events_the_writer_could_not_write_are_refused_before_the_ack(tmp_path: Path) -> None:
    """The poison events of issue 10 §1 and the traversal names of §3: each a 4xx now."""
    unknown = binary_event(
        "response",
        "ghost",
        "nosuchproject",
        v2_response(np.array([0.3]), "nosuchproject", "1", "g"),
    )
    escape_version = binary_event(
        "response", "mv", "diecast", v2_response(np.array([0.3]), "diecast", "../../../esc", "mv")
    )
    feedback_version = binary_event(
        "response", "fv", "diecast", v2_response(np.array([0.3]), "diecast", "feedback", "fv")
    )
    escape_project = binary_event("request", "ep", "../../escape", _request())

    async def check(client: Client) -> None:
        answer = await client.post("/", headers={**unknown[0], **AUTH}, content=unknown[1])
        assert answer.status_code == 422 and "nosuchproject" in answer.json()["error"]
        for headers, body in (escape_version, feedback_version):
            answer = await client.post("/", headers={**headers, **AUTH}, content=body)
            assert answer.status_code == 400 and "model_version" in answer.json()["error"]
        answer = await client.post(
            "/", headers={**escape_project[0], **AUTH}, content=escape_project[1]
        )
        assert answer.status_code == 400 and "project" in answer.json()["error"]
        for item, named in (
            ({"request_id": "r", "label": 1, "observed_at": 1e17}, "observed_at"),
            ({"request_id": "r", "label": 1, "observed_at": -5}, "observed_at"),
            ({"request_id": "r", "label": 1, "project": "../../escape-fb"}, "project"),
            ({"request_id": "r", "label": 1, "project": "/tmp/escape-abs"}, "project"),
            ({"request_id": "r", "label": 1, "project": "nosuchproject"}, "nosuchproject"),
            (b'{"request_id": "r", "label": 1e400}', "label"),
            (b'{"request_id": "r", "label": NaN}', "label"),
        ):
            raw = item if isinstance(item, bytes) else orjson.dumps(item)
            answer = await client.post("/v1/feedback", headers=AUTH, content=raw)
            assert 400 <= answer.status_code < 500 and named in answer.json()["error"], item

    _serve(tmp_path, check)
    assert not list(tmp_path.parent.rglob("escape*")) and not list(tmp_path.rglob("esc*"))


def test_malformed_json_content_type_and_empty_feedback(tmp_path: Path) -> None:
    request = binary_event("request", "ct", "diecast", _request())

    async def check(client: Client) -> None:
        # Malformed JSON is one status on both endpoints.
        event = await client.post("/", headers={**request[0], **AUTH}, content=b"{not json")
        feedback = await client.post("/v1/feedback", headers=AUTH, content=b"{not json")
        assert event.status_code == feedback.status_code == 400
        empty = await client.post("/v1/feedback", headers=AUTH, json=[])
        assert empty.status_code == 400 and "empty list" in empty.json()["error"]
        # A lone surrogate is no text: 400 before a record holds it (it was a 500 at encode).
        for raw in (b'{"request_id": "\\ud800", "label": 1}', b'{"request_id": "\xed\xa0\x80"}'):
            surrogate = await client.post("/v1/feedback", headers=AUTH, content=raw)
            assert surrogate.status_code == 400, surrogate.text
        for media in ("text/plain", "application/xml", "image/png"):
            for path, headers in (("/", request[0]), ("/v1/feedback", {})):
                typed = {**headers, **AUTH, "content-type": media}
                answer = await client.post(path, headers=typed, content=request[1])
                assert answer.status_code == 415, (path, media, answer.text)
        structured = structured_event("request", "ct-s", "diecast", _request())
        accepted = await client.post("/", headers={**structured[0], **AUTH}, content=structured[1])
        assert accepted.status_code == 202
        wrong = await client.get("/v1/events")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
        assert set(wrong.json()) == {"error", "type", "details"}

    _serve(tmp_path, check, accepted=1)


def test_structured_data_base64_is_decoded(tmp_path: Path) -> None:
    data = base64.b64encode(orjson.dumps(_request())).decode()
    headers, body = _structured(data_base64=data, inferenceservicename="diecast")

    async def check(client: Client) -> None:
        answer = await client.post("/", headers={**headers, **AUTH}, content=body)
        assert answer.status_code == 202, answer.text

    _serve(tmp_path, check, accepted=1)
