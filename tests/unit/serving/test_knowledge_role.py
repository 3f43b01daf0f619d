"""The knowledge role in process: a tiny index from the shared fixture corpus, a local store of
two versions (and a corrupt third), the app called over httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from castml.knowledge.index_store import build_index_from_corpus, save_index
from castml.knowledge.tokenizing import KnowledgeTokenizer
from serving.knowledge import KnowledgeServer, knowledge_app
from serving.settings import serving_settings
from tests.unit.test_knowledge_parsing import write_fixture_corpus

URL = "http://kb"
PREDICT = "/v1/models/diecast-kb:predict"
INFER = "/v2/models/diecast-kb/infer"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kb-store")
    corpus = write_fixture_corpus(root / "corpus")
    index = build_index_from_corpus(corpus, KnowledgeTokenizer())
    save_index(index, root / "1" / "index")
    shutil.copytree(root / "1" / "index", root / "2" / "index")
    shutil.copytree(root / "1" / "index", root / "3" / "index")
    with (root / "3" / "index" / "chunks.jsonl").open("a", encoding="utf-8") as out:
        out.write("\n")  # no longer matches its manifest
    (root / "aliases.json").write_text(json.dumps({"champion": "1"}))
    return root


@pytest.fixture(scope="module")
def served(
    store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, KnowledgeServer]]:
    settings = serving_settings(
        project="diecast-kb",
        model_store=store,
        home=tmp_path_factory.mktemp("home"),
    )
    app, server = knowledge_app(settings)
    server.slot.load_blocking("champion")
    yield app, server
    server.slot.asker.shutdown(wait=True)


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=URL) as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def test_english_answer_cites_real_passages(served: tuple[Any, KnowledgeServer]) -> None:
    app, server = served
    response = call(app, "POST", PREDICT, json={"query": "how do I stop flash at the parting line"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "1" and body["model_name"] == "diecast-kb"
    assert response.headers["x-model-version"] == "1"
    assert body["language"] == "en" and not body["no_answer"]
    assert body["sources"][0]["document"] == "en-flash"
    assert {"document", "section", "relevance"} <= set(body["sources"][0])
    assert "[en-flash, §" in body["answer"]
    chunk_ids = {c.chunk_id for c in server.slot.current.kb.index.chunks}
    logged = [
        json.loads(line)
        for path in server.log.directory.glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    mine = [r for r in logged if r["id"] == body["id"]]
    assert len(mine) == 1 and mine[0]["source_ids"] == [s["id"] for s in body["sources"]]
    assert set(mine[0]["source_ids"]) <= chunk_ids


def test_korean_answer_with_context_recommends(served: tuple[Any, KnowledgeServer]) -> None:
    app, _ = served
    context = {
        "prediction": {"class": "defect", "probability": 0.9},
        # the explainer's shape: `feature`, not `name`
        "top_features": [{"feature": "Sensor_HydrogenContent", "value": 0.41}],
        "features": {"Sensor_HydrogenContent": 0.41},
    }
    body = call(
        app, "POST", PREDICT, json={"query": "가스 기공 원인은?", "context": context}
    ).json()
    assert body["language"] == "ko" and body["sources"][0]["document"] == "ko-gas-porosity"
    assert "추정 원인:" in body["answer"]
    assert body["recommendations"] and "Sensor_HydrogenContent 0.41" in body["recommendations"][0]


def test_v2_infer_answers_bytes_tensors(served: tuple[Any, KnowledgeServer]) -> None:
    app, _ = served
    payload = {
        "id": "q-1",
        "inputs": [
            {"name": "query", "datatype": "BYTES", "shape": [1], "data": ["냉간 접합 조치"]},
            {"name": "language", "datatype": "BYTES", "shape": [1], "data": ["xx"]},
        ],
    }
    response = call(app, "POST", INFER, json=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "q-1" and body["model_version"] == "1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["answer"]["datatype"] == "BYTES" and outputs["language"]["data"] == ["ko"]
    sources = json.loads(outputs["sources"]["data"][0])
    assert sources[0]["document"].startswith("ko-cold-shut")
    assert "detected 'ko'" in body["parameters"]["language_note"]


def test_no_answer_is_counted(served: tuple[Any, KnowledgeServer]) -> None:
    app, _ = served
    body = call(app, "POST", PREDICT, json={"query": "what is the weather in Paris tomorrow"})
    assert body.json()["no_answer"] is True
    metrics = call(app, "GET", "/metrics").text
    assert 'castml_kb_answers_total{outcome="no_answer",project="diecast"}' in metrics
    rate = [line for line in metrics.splitlines() if line.startswith("castml_kb_no_answer_rate{")]
    assert rate and 0.0 < float(rate[0].rsplit(" ", 1)[1]) <= 1.0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x" * 2001}, "query"),
        ({"query": 42}, "query"),
        ({}, "query"),
        ({"query": "flash", "context": "hot"}, "context"),
        ({"query": "flash", "context": {"top_features": 3}}, "context.top_features"),
        ({"query": "flash", "language": 7}, "language"),
        ({"query": "flash", "filters": {"colour": ["red"]}}, "filters.colour"),
        ([1, 2], "body"),
    ],
)
def test_bad_input_is_400_naming_the_field(
    served: tuple[Any, KnowledgeServer], body: Any, field: str
) -> None:
    response = call(served[0], "POST", PREDICT, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["details"][0]["field"] == field


def test_transport_errors(served: tuple[Any, KnowledgeServer]) -> None:
    app, _ = served
    not_json = call(
        app, "POST", PREDICT, content=b"{query", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    form = call(app, "POST", PREDICT, content=b"query=x", headers={"content-type": "text/plain"})
    assert form.status_code == 415
    huge = call(app, "POST", PREDICT, json={"query": "x" * 70_000})
    assert huge.status_code == 413
    assert call(app, "POST", "/v1/models/diecast:predict", json={"query": "x"}).status_code == 404
    v2_bad = {"inputs": [{"name": "query", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
    answer = call(app, "POST", INFER, json=v2_bad)
    assert answer.status_code == 400 and answer.json()["details"][0]["field"] == "inputs.query"


def test_load_switches_and_refuses_a_mismatching_index(
    served: tuple[Any, KnowledgeServer],
) -> None:
    app, server = served
    load = "/v2/repository/models/diecast-kb/load"
    refused = call(app, "POST", load, json={"parameters": {"version": "3"}})
    assert refused.status_code == 422
    assert "chunks.jsonl does not match its sha256" in refused.json()["error"]
    assert server.slot.current.version == "1"
    switched = call(app, "POST", load, json={"parameters": {"version": "2"}})
    assert switched.status_code == 200 and switched.json()["switched"] is True
    meta = call(app, "GET", "/v2/models/diecast-kb").json()
    assert meta["versions"] == ["2"]
    back = call(app, "POST", load, json={"parameters": {"version": "1"}})
    assert back.json()["version"] == "1"
