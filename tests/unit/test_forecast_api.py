"""The read endpoint's one-horizon answer: the cached record's bytes with `age_s` and
`stale` spliced in, the same JSON as decoding the record and encoding it again; a record
that is not whole is unreadable (404), never served. A real redis-server, the ASGI app
called in-process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson

from castml.protocol.forecast_record import ForecastRecord
from serving.forecast_api import forecast_app
from serving.settings import ForecastSettings
from tests.support.redis_server import client_of, redis_server


async def get(app: Any, path: str, query: bytes) -> tuple[int, dict[bytes, bytes], Any]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "query_string": query, "headers": []}
    await app(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), orjson.loads(sent[1]["body"])


def test_one_horizon_is_the_record_as_cached_plus_its_age(tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as server:
        settings = ForecastSettings(
            home=tmp_path,
            redis_url=server.url,
            redis_password=server.password,
            forecast_stale_s=600,
        )
        client = client_of(server)
        now = time.time()
        fresh = ForecastRecord("bikeshare", "dc", 1, 41.25, "3", now - 5, now - 3605, 900)
        stale = ForecastRecord("bikeshare", "old", 1, 7.0, "3", now - 700, now - 4300, 900)
        client.set(fresh.key, fresh.encode())
        client.set(stale.key, stale.encode())
        client.set("forecast:bikeshare:torn:1", fresh.encode()[:-20])
        client.set("forecast:bikeshare:thin:1", orjson.dumps({"value": 1.0}))
        later = fresh.to_json() | {"added_later": 1}
        client.set("forecast:bikeshare:later:1", orjson.dumps(later))

        async def scenario() -> None:
            app, api = forecast_app(settings)

            status, headers, body = await get(app, "/v1/forecast/bikeshare/dc", b"horizon=1")
            assert status == 200 and headers[b"x-model-version"] == b"3"
            assert body == fresh.to_json() | {"age_s": body["age_s"], "stale": False}
            assert 5 <= body["age_s"] < 60 and int(headers[b"age"]) == int(body["age_s"])

            status, headers, body = await get(app, "/v1/forecast/bikeshare/old", b"horizon=1")
            assert (
                status == 200
                and body["stale"] is True
                and "staleness limit" in body["stale_reason"]
            )
            assert b"Stale" in headers[b"warning"]

            for series in ("torn", "thin"):
                status, _, body = await get(app, f"/v1/forecast/bikeshare/{series}", b"horizon=1")
                assert status == 404 and "unreadable" in body["error"]

            status, _, body = await get(app, "/v1/forecast/bikeshare/later", b"horizon=1")
            assert status == 200 and "added_later" not in body and body["value"] == 41.25
            await api.cache.close()

        asyncio.run(scenario())
