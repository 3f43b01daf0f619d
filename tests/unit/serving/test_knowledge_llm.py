"""The knowledge role with the optional LLM: the app in process (httpx's ASGI transport) on a
tiny index from the shared fixture corpus, `CASTML_LLM_*` pointing at a stand-in server on
loopback that speaks the OpenAI chat protocol (tests.support.llm_standin).

The rewrite is served only when it keeps the retrieved passages' citations and invents
none; otherwise, and when the endpoint fails, is slow or is down, the extractive answer is
served with the reason. A no-answer never reaches the LLM."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from castml.knowledge.index_store import build_index_from_corpus, save_index
from castml.knowledge.tokenizing import KnowledgeTokenizer
from serving.knowledge import KnowledgeServer, knowledge_app
from serving.settings import serving_settings
from tests.support.llm_standin import INVENTED_CITATION, LlmStandIn
from tests.support.ports import free_port
from tests.unit.test_knowledge_parsing import write_fixture_corpus

URL = "http://kb"
PREDICT = "/v1/models/diecast-kb:predict"
INFER = "/v2/models/diecast-kb/infer"
FLASH = "how do I stop flash at the parting line"
MARKER = re.compile(r"\[[^\[\]\n]+, (?:p\. \d+|§ [^\]\n]+), \d\.\d\d\]")
API_KEY = "kb-test-key"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kb-llm-store")
    index = build_index_from_corpus(write_fixture_corpus(root / "corpus"), KnowledgeTokenizer())
    save_index(index, root / "1" / "index")
    (root / "aliases.json").write_text(json.dumps({"champion": "1"}))
    return root


@pytest.fixture(scope="module")
def standin() -> Iterator[LlmStandIn]:
    with LlmStandIn() as server:
        yield server


@pytest.fixture(scope="module")
def served(
    store: Path, standin: LlmStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, KnowledgeServer]]:
    settings = serving_settings(
        project="diecast-kb",
        model_store=store,
        home=tmp_path_factory.mktemp("home"),
        llm_base_url=standin.base_url,
        llm_model="stand-in",
        llm_api_key=API_KEY,
        llm_timeout_s=1.0,
    )
    app, server = knowledge_app(settings)
    server.slot.load_blocking("champion")
    yield app, server
    server.slot.asker.shutdown(wait=True)


@pytest.fixture
def llm(standin: LlmStandIn) -> Iterator[LlmStandIn]:
    """The module's stand-in, fresh for one test: good answers, no requests recorded."""
    standin.mode, standin.requests[:] = "good", []
    standin.release.clear()
    yield standin
    standin.release.set()  # let a held request go before the next test


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=URL) as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def extractive(server: KnowledgeServer, query: str) -> dict[str, Any]:
    """What the index answers without the LLM (the same retrieval, called directly)."""
    answer = server.slot.current.kb.ask(query, k=server.settings.kb_top_k)
    return answer.to_json()


def test_the_answer_is_rewritten_keeping_the_passages_citations(
    served: tuple[Any, KnowledgeServer], llm: LlmStandIn
) -> None:
    app, server = served
    body = call(app, "POST", PREDICT, json={"query": FLASH}).json()
    plain = extractive(server, FLASH)
    assert body["answer_source"] == "llm" and "answer_note" not in body
    assert body["answer"].startswith("Summary (rewritten):") and body["answer"] != plain["answer"]
    given = set(MARKER.findall(plain["answer"]))
    cited = set(MARKER.findall(body["answer"]))
    assert cited and cited <= {m for m in MARKER.findall(llm.requests[0].user)}
    assert given <= cited  # the stand-in cites every passage it was given
    # the LLM touches the text only
    assert body["sources"] == plain["sources"]
    assert body["recommendations"] == plain["recommendations"]
    (sent,) = llm.requests
    assert sent.headers["Authorization"] == f"Bearer {API_KEY}"
    assert sent.body["model"] == "stand-in" and sent.body["temperature"] == 0
    assert "English" in sent.system and FLASH in sent.user
    assert "Increase the clamping force" in sent.user  # the passages themselves, not just ids


def test_a_korean_answer_is_rewritten_in_korean(
    served: tuple[Any, KnowledgeServer], llm: LlmStandIn
) -> None:
    app, _ = served
    body = call(app, "POST", PREDICT, json={"query": "가스 기공 원인은?"}).json()
    assert body["language"] == "ko" and body["answer_source"] == "llm"
    assert "Korean" in llm.requests[0].system
    assert all(m.startswith("[ko-") for m in MARKER.findall(body["answer"])), body["answer"]


def test_an_invented_citation_keeps_the_extractive_answer_and_says_why(
    served: tuple[Any, KnowledgeServer], llm: LlmStandIn
) -> None:
    app, server = served
    llm.mode = "invent"
    body = call(app, "POST", PREDICT, json={"query": FLASH}).json()
    assert len(llm.requests) == 1
    assert body["answer_source"] == "extractive"
    assert body["answer"] == extractive(server, FLASH)["answer"]
    assert INVENTED_CITATION in body["answer_note"]
    assert "not a retrieved passage" in body["answer_note"]


def test_a_rewrite_without_citations_is_not_served(
    served: tuple[Any, KnowledgeServer], llm: LlmStandIn
) -> None:
    app, server = served
    llm.mode = "drop"
    body = call(app, "POST", PREDICT, json={"query": FLASH}).json()
    assert body["answer_source"] == "extractive"
    assert body["answer"] == extractive(server, FLASH)["answer"]
    assert "kept none of the retrieved passages' citations" in body["answer_note"]


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("error", "LLM http status"),
        ("malformed", "LLM malformed"),
        ("hang", "LLM timeout"),
    ],
)
def test_an_endpoint_failure_keeps_the_extractive_answer(
    served: tuple[Any, KnowledgeServer], llm: LlmStandIn, mode: str, words: str
) -> None:
    app, server = served
    llm.mode = mode
    response = call(app, "POST", PREDICT, json={"query": FLASH})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer_source"] == "extractive" and not body["no_answer"]
    assert body["answer"] == extractive(server, FLASH)["answer"]
    assert words in body["answer_note"] and "extractive answer is kept" in body["answer_note"]


def test_an_endpoint_that_is_down_keeps_the_extractive_answer(
    served: tuple[Any, KnowledgeServer], llm: LlmStandIn
) -> None:
    app, server = served
    live = server.llm
    assert live is not None
    server.llm = dataclasses.replace(live, base_url=f"http://127.0.0.1:{free_port()}/v1")
    try:
        body = call(app, "POST", PREDICT, json={"query": FLASH}).json()
    finally:
        server.llm = live
    assert body["answer_source"] == "extractive"
    assert body["answer"] == extractive(server, FLASH)["answer"]
    assert "LLM unreachable" in body["answer_note"]


def test_a_no_answer_is_never_sent_to_the_llm(
    served: tuple[Any, KnowledgeServer], llm: LlmStandIn
) -> None:
    app, _ = served
    body = call(app, "POST", PREDICT, json={"query": "what is the weather in Paris tomorrow"})
    answer = body.json()
    assert answer["no_answer"] is True and answer["sources"] == []
    assert answer["answer"].startswith("The knowledge base has no good answer")
    assert answer["answer_source"] == "extractive" and "not asked" in answer["answer_note"]
    assert llm.requests == []


def test_v2_infer_says_who_wrote_the_answer(
    served: tuple[Any, KnowledgeServer], llm: LlmStandIn
) -> None:
    app, _ = served
    payload = {"inputs": [{"name": "query", "datatype": "BYTES", "shape": [1], "data": [FLASH]}]}
    body = call(app, "POST", INFER, json=payload).json()
    outputs = {o["name"]: o["data"][0] for o in body["outputs"]}
    assert body["parameters"]["answer_source"] == "llm"
    assert outputs["answer"].startswith("Summary (rewritten):")
    assert json.loads(outputs["sources"])[0]["document"] == "en-flash"


def test_a_slow_llm_does_not_hold_the_event_loop(
    served: tuple[Any, KnowledgeServer], llm: LlmStandIn
) -> None:
    """While the endpoint holds the rewrite, the same loop answers a probe; then the answer
    arrives, rewritten. (Ordering, not timing: the stand-in holds until the test lets go.)"""
    app, server = served
    live = server.llm
    assert live is not None
    server.llm = dataclasses.replace(live, timeout_s=120.0)
    llm.mode = "hang"

    async def go() -> tuple[int, bool, dict[str, Any]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=URL) as client:
            asked = asyncio.create_task(client.post(PREDICT, json={"query": FLASH}))
            while not llm.requests:  # the rewrite has reached the (held) endpoint
                await asyncio.sleep(0.01)
            probe = await client.get("/v2/health/live")
            still_waiting = not asked.done()
            llm.release.set()
            return probe.status_code, still_waiting, (await asked).json()

    try:
        status, still_waiting, body = asyncio.run(go())
    finally:
        server.llm = live
    assert status == 200 and still_waiting
    assert body["answer_source"] == "llm"
