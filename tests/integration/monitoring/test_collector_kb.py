"""The knowledge role's query log through a real collector: a query asked of a real knowledge
server (pinned to a `diecast-kb` version in a real MLflow, CASTML_LOGGER_URL set) lands in
the collector's Parquet with its source ids, `castml lineage diecast-kb` counts it, and a
malformed kb event is refused with a 4xx naming its field."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from castml.cli.local_processes import ServerProcess, start_server
from castml.cli.logger_cloudevents import binary_event
from castml.knowledge.index_store import build_index_from_corpus, save_index
from castml.knowledge.tokenizing import KnowledgeTokenizer
from tests.support.collector_process import TOKEN, CollectorProcess
from tests.support.kb_versions import register_kb_version
from tests.unit.test_knowledge_parsing import write_fixture_corpus

pytestmark = pytest.mark.integration
PREDICT = "/v1/models/diecast-kb:predict"


@dataclass(frozen=True)
class KbStack:
    mlflow_uri: str
    version: str
    collector: CollectorProcess
    knowledge: ServerProcess
    knowledge_home: Path

    @property
    def logs(self) -> Path:
        return self.collector.home / "logs" / "diecast-kb"


@pytest.fixture(scope="module")
def stack(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KbStack]:
    root = tmp_path_factory.mktemp("kb-log")
    index = build_index_from_corpus(write_fixture_corpus(root / "corpus"), KnowledgeTokenizer())
    index_dir = save_index(index, root / "index")
    version = register_kb_version(
        mlflow_server,
        "diecast",
        index_dir,
        corpus_hash=str(index.manifest["corpus_hash"]),
        champion=True,
    )
    collector = CollectorProcess(root / "collector").start()
    try:
        env = {
            "CASTML_MLFLOW_URI": mlflow_server,
            "CASTML_HOME": str(root / "kb-home"),
            "CASTML_MODEL_VERSION": "champion",
            "CASTML_LOGGER_URL": f"http://127.0.0.1:{collector.port}/",
            "CASTML_LOGGER_TOKEN": TOKEN,
        }
        knowledge = start_server("knowledge", env, root / "server-logs", project="diecast-kb")
        try:
            yield KbStack(mlflow_server, version, collector, knowledge, root / "kb-home")
        finally:
            knowledge.stop()
    finally:
        collector.stop()


def logged_rows(stack: KbStack) -> list[dict[str, Any]]:
    files = sorted((stack.logs / stack.version).glob("date=*/*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def test_a_query_lands_in_parquet_with_its_source_ids_and_lineage_counts_it(
    stack: KbStack,
) -> None:
    context = {"prediction": {"class": "defect", "probability": 0.9}}
    asked: list[dict[str, Any]] = [
        {"query": "how do I stop flash at the parting line"},
        {"query": "가스 기공 원인은?", "context": context},
        {"query": "what is the weather in Paris tomorrow"},
    ]
    answers: list[dict[str, Any]] = []
    for body in asked:
        reply = httpx.post(stack.knowledge.url + PREDICT, json=body, timeout=30.0)
        assert reply.status_code == 200, reply.text
        answers.append(reply.json())
    stack.collector.wait_for(lambda: len(logged_rows(stack)) >= len(asked))

    rows = {row["request_id"]: row for row in logged_rows(stack)}
    for body, answer in zip(asked, answers, strict=True):
        row = rows[answer["id"]]
        assert row["query"] == body["query"]
        assert row["source_ids"] == [s["id"] for s in answer["sources"]]
        assert row["documents"] == [s["document"] for s in answer["sources"]]
        assert row["no_answer"] is answer["no_answer"]
        assert row["model_name"] == "diecast-kb" and row["model_version"] == stack.version
        assert row["language"] == answer["language"] and row["component"] == "knowledge"
    korean = rows[answers[1]["id"]]
    assert korean["prediction_class"] == "defect"
    assert korean["prediction_probability"] == pytest.approx(0.9)
    assert answers[2]["no_answer"] and not answers[0]["no_answer"]
    # With a collector, no local JSONL beside the Parquet (the fallback of a role without one).
    assert not list((stack.knowledge_home / "logs").rglob("*.jsonl"))

    from castml.cli.main import app

    env = {"CASTML_HOME": str(stack.collector.home), "CASTML_MLFLOW_URI": stack.mlflow_uri}
    result = CliRunner().invoke(app, ["lineage", "diecast-kb", "--version", stack.version], env=env)
    assert result.exit_code == 0, result.output
    assert "3 logged queries, 1 without an answer (33.3%)" in result.output
    assert "most cited" in result.output and "en-flash" in result.output

    found = CliRunner().invoke(
        app, ["lineage", "diecast-kb", "--request-id", answers[0]["id"]], env=env
    )
    assert found.exit_code == 0, found.output
    assert f"request {answers[0]['id']}" in found.output


def kb_event(kind: str, data: object, project: str = "diecast-kb") -> tuple[dict[str, str], bytes]:
    headers, _ = binary_event(kind, "bad-1", project, {}, component="knowledge")
    return headers, orjson.dumps(data)


ANSWER: dict[str, Any] = {
    "model_name": "diecast-kb",
    "model_version": "1",
    "id": "bad-1",
    "language": "en",
    "no_answer": False,
    "sources": [{"id": "en-flash#0", "document": "en-flash", "relevance": 0.8}],
}


@pytest.mark.parametrize(
    ("kind", "data", "field"),
    [
        ("request", {"context": None}, "query"),
        ("request", {"query": "  "}, "query"),
        ("request", {"query": "x", "language": 3}, "language"),
        ("request", ["not", "an", "object"], "data"),
        ("response", {k: v for k, v in ANSWER.items() if k != "no_answer"}, "no_answer"),
        ("response", {**ANSWER, "sources": [{"document": "en-flash"}]}, "sources[0].id"),
        ("response", {**ANSWER, "sources": "en-flash"}, "sources"),
        ("response", {**ANSWER, "model_version": "../1"}, "model_version"),
        ("response", {**ANSWER, "model_name": "diecast"}, "model_name"),
    ],
)
def test_a_malformed_kb_event_is_refused_naming_its_field(
    stack: KbStack, kind: str, data: object, field: str
) -> None:
    answer = stack.collector.post(*kb_event(kind, data))
    assert answer.status_code == 400, answer.text
    assert field in [d["field"] for d in answer.json()["details"]]
    assert field in answer.json()["error"]


def test_a_kb_of_a_project_the_collector_does_not_serve_is_refused(stack: KbStack) -> None:
    answer = stack.collector.post(*kb_event("response", ANSWER, project="nosuch-kb"))
    assert answer.status_code == 422 and "'nosuch'" in answer.json()["error"]
