"""The knowledge role as a real process on loopback, pinned to `diecast-kb` versions in a real
MLflow: cited answers in Korean and English, the rollout reconciler's live switch of
@champion under traffic (0 failed requests), an index that does not match its version
refused while the old one keeps serving, and bad input."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from castml.cli.local_processes import ServerProcess, start_server
from castml.knowledge.index_store import build_index_from_corpus, save_index
from castml.knowledge.tokenizing import KnowledgeTokenizer
from serving.rollout import EmbeddedTarget, Reconciler
from serving.settings import rollout_settings
from tests.support.kb_versions import register_kb_version, set_champion
from tests.unit.test_knowledge_parsing import write_fixture_corpus

pytestmark = pytest.mark.integration
PREDICT = "/v1/models/diecast-kb:predict"


@dataclass(frozen=True)
class KbRegistry:
    uri: str
    index_dir: Path
    corpus_hash: str
    versions: list[str]


@pytest.fixture(scope="module")
def kb_registry(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> KbRegistry:
    root = tmp_path_factory.mktemp("kb-build")
    corpus = write_fixture_corpus(root / "corpus")
    index = build_index_from_corpus(corpus, KnowledgeTokenizer())
    index_dir = save_index(index, root / "index")
    corpus_hash = str(index.manifest["corpus_hash"])
    first = register_kb_version(
        mlflow_server, "diecast", index_dir, corpus_hash=corpus_hash, champion=True
    )
    second = register_kb_version(mlflow_server, "diecast", index_dir, corpus_hash=corpus_hash)
    return KbRegistry(mlflow_server, index_dir, corpus_hash, [first, second])


@pytest.fixture(scope="module")
def kb_server(
    kb_registry: KbRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("kb-home")
    env = {
        "CASTML_MLFLOW_URI": kb_registry.uri,
        "CASTML_HOME": str(home),
        "CASTML_MODEL_VERSION": "champion",
    }
    server = start_server("knowledge", env, home / "logs", project="diecast-kb")
    try:
        yield server
    finally:
        server.stop()


def ask(server: ServerProcess, body: object) -> httpx.Response:
    return httpx.post(server.url + PREDICT, json=body, timeout=30.0)


def test_pinned_champion_answers_in_both_languages(
    kb_server: ServerProcess, kb_registry: KbRegistry
) -> None:
    english = ask(kb_server, {"query": "how do I stop flash at the parting line"}).json()
    assert english["model_version"] == kb_registry.versions[0]
    assert english["language"] == "en" and english["sources"][0]["document"] == "en-flash"
    assert "Increase the clamping force" in english["answer"]
    korean = ask(kb_server, {"query": "가스 기공 원인은?"}).json()
    assert korean["language"] == "ko" and korean["sources"][0]["document"] == "ko-gas-porosity"
    assert "[ko-gas-porosity, §" in korean["answer"]
    page = ask(kb_server, {"query": "heat checking cracks on the die steel"}).json()
    assert {"document": "en-die-soldering", "page": 2}.items() <= page["sources"][0].items()


def test_bad_input(kb_server: ServerProcess) -> None:
    for body, field in [({"query": ""}, "query"), ({"query": "x" * 2001}, "query")]:
        response = ask(kb_server, body)
        assert response.status_code == 400 and response.json()["details"][0]["field"] == field
    not_json = httpx.post(
        kb_server.url + PREDICT, content=b"{", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    wrong_type = httpx.post(
        kb_server.url + PREDICT, content=b"q", headers={"content-type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    unknown = ask(kb_server, {"query": "냉간 접합 조치", "language": "fr"}).json()
    assert unknown["language"] == "ko" and "detected 'ko'" in unknown["language_note"]


def test_reconciler_switches_champion_under_traffic(
    kb_server: ServerProcess, kb_registry: KbRegistry, tmp_path: Path
) -> None:
    first, second = kb_registry.versions
    stop = threading.Event()
    queries = ["how do I stop flash at the parting line", "가스 기공 원인은?"]

    def traffic(worker: int) -> list[tuple[int, str]]:
        seen: list[tuple[int, str]] = []
        with httpx.Client(base_url=kb_server.url, timeout=30.0) as client:
            i = 0
            while not stop.is_set() or i < 3:
                response = client.post(PREDICT, json={"query": queries[(worker + i) % 2]})
                seen.append((response.status_code, response.headers.get("x-model-version", "")))
                i += 1
        return seen

    settings = rollout_settings(
        project="diecast-kb", mlflow_uri=kb_registry.uri, home=tmp_path, predictor_url=kb_server.url
    )
    reconciler = Reconciler(settings, EmbeddedTarget(kb_server.url, "diecast-kb"))
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(traffic, w) for w in range(4)]
        try:
            set_champion(kb_registry.uri, "diecast", second)
            outcome = asyncio.run(reconciler.reconcile("manual"))
            after = [ask(kb_server, {"query": "flash"}) for _ in range(3)]
        finally:
            stop.set()
        results = [r for f in futures for r in f.result()]
    assert outcome.action == "deployed", outcome
    assert outcome.served_before == first and outcome.champion == second
    assert all(status == 200 for status, _ in results), [r for r in results if r[0] != 200]
    assert {version for _, version in results} <= {first, second}
    assert all(r.headers["x-model-version"] == second for r in after)
    again = asyncio.run(reconciler.reconcile("periodic"))
    assert again.action == "unchanged"


def test_index_not_matching_its_version_is_refused(
    kb_server: ServerProcess, kb_registry: KbRegistry
) -> None:
    serving_now = ask(kb_server, {"query": "flash"}).headers["x-model-version"]
    wrong = register_kb_version(
        kb_registry.uri, "diecast", kb_registry.index_dir, corpus_hash="0" * 64
    )
    response = httpx.post(
        kb_server.url + "/v2/repository/models/diecast-kb/load",
        json={"parameters": {"version": wrong}},
        timeout=60.0,
    )
    assert response.status_code == 422, response.text
    assert f"version {wrong}" in response.json()["error"]
    assert "corpus hash" in response.json()["error"]
    assert ask(kb_server, {"query": "flash"}).headers["x-model-version"] == serving_now
