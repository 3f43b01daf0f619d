"""The optional LLM end to end, configured only by `CASTML_LLM_*` in the environment: the
knowledge role as a real process (`python -m serving knowledge`) pinned to a `diecast-kb`
version in a real MLflow, and `castml kb ask`, both pointed at a stand-in server on loopback
that speaks the OpenAI chat protocol (tests.support.llm_standin)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from castml.cli.local_processes import ServerProcess, start_server
from castml.knowledge.index_store import build_index_from_corpus, save_index
from castml.knowledge.tokenizing import KnowledgeTokenizer
from tests.support.kb_versions import register_kb_version
from tests.support.llm_standin import INVENTED_CITATION, LlmStandIn
from tests.unit.test_knowledge_parsing import write_fixture_corpus

pytestmark = pytest.mark.integration
PROJECT = "llmkb"  # its own registered model: no clash with other modules' diecast-kb
FLASH = "how do I stop flash at the parting line"
MARKER = re.compile(r"\[[^\[\]\n]+, (?:p\. \d+|§ [^\]\n]+), \d\.\d\d\]")


@pytest.fixture(scope="module")
def standin() -> Iterator[LlmStandIn]:
    with LlmStandIn() as server:
        yield server


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """diecast's spec under this module's own project name."""
    raw = yaml.safe_load(Path("castml/projects/diecast.yaml").read_text(encoding="utf-8"))
    raw["name"] = PROJECT
    path = tmp_path_factory.mktemp("spec") / f"{PROJECT}.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def registered(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("kb-llm-build")
    index = build_index_from_corpus(write_fixture_corpus(root / "corpus"), KnowledgeTokenizer())
    index_dir = save_index(index, root / "index")
    return register_kb_version(
        mlflow_server,
        PROJECT,
        index_dir,
        corpus_hash=str(index.manifest["corpus_hash"]),
        champion=True,
    )


@pytest.fixture(scope="module")
def kb_server(
    mlflow_server: str,
    registered: str,
    spec: Path,
    standin: LlmStandIn,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("kb-llm-home")
    env = {
        "CASTML_MLFLOW_URI": mlflow_server,
        "CASTML_HOME": str(home),
        "CASTML_MODEL_VERSION": "champion",
        "CASTML_LLM_BASE_URL": standin.base_url,
        "CASTML_LLM_MODEL": "stand-in",
        "CASTML_LLM_API_KEY": "process-key",
    }
    server = start_server("knowledge", env, home / "logs", project=str(spec))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def llm(standin: LlmStandIn) -> LlmStandIn:
    standin.mode, standin.requests[:] = "good", []
    return standin


def test_the_served_answer_is_rewritten_from_the_environment_s_endpoint(
    kb_server: ServerProcess, registered: str, llm: LlmStandIn
) -> None:
    response = httpx.post(
        f"{kb_server.url}/v1/models/{PROJECT}-kb:predict", json={"query": FLASH}, timeout=60
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == registered and body["answer_source"] == "llm"
    assert body["sources"][0]["document"] == "en-flash"
    cited = MARKER.findall(body["answer"])
    assert cited and set(cited) <= set(MARKER.findall(llm.requests[0].user))
    (sent,) = llm.requests
    assert sent.headers["Authorization"] == "Bearer process-key"
    assert sent.body["model"] == "stand-in"
    assert "process-key" not in kb_server.log.read_text(encoding="utf-8")


def test_the_served_answer_falls_back_on_an_invented_citation(
    kb_server: ServerProcess, llm: LlmStandIn
) -> None:
    llm.mode = "invent"
    body = httpx.post(
        f"{kb_server.url}/v1/models/{PROJECT}-kb:predict", json={"query": FLASH}, timeout=60
    ).json()
    assert body["answer_source"] == "extractive" and INVENTED_CITATION in body["answer_note"]
    assert INVENTED_CITATION not in body["answer"] and MARKER.search(body["answer"])


def kb_ask(mlflow_server: str, spec: Path, llm: LlmStandIn | None, *extra: str) -> str:
    from castml.cli.main import app

    env = {"CASTML_MLFLOW_URI": mlflow_server, "CASTML_LLM_BASE_URL": ""}
    if llm is not None:
        env["CASTML_LLM_BASE_URL"] = llm.base_url
    result = CliRunner().invoke(app, ["kb", "ask", FLASH, "--project", str(spec), *extra], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_kb_ask_rewrites_with_the_endpoint_and_keeps_the_answer_without_it(
    mlflow_server: str, registered: str, spec: Path, llm: LlmStandIn
) -> None:
    rewritten = json.loads(kb_ask(mlflow_server, spec, llm, "--json"))
    assert rewritten["answer_source"] == "llm"
    assert rewritten["answer"].startswith("Summary (rewritten):")
    assert len(llm.requests) == 1
    plain = json.loads(kb_ask(mlflow_server, spec, None, "--json"))
    assert "answer_source" not in plain  # no endpoint: the answer as it always was
    assert plain["sources"] == rewritten["sources"]
    assert plain["recommendations"] == rewritten["recommendations"]
    assert len(llm.requests) == 1
    llm.mode = "error"
    text = kb_ask(mlflow_server, spec, llm)
    assert "LLM not used: LLM http status" in text and "[en-flash, §" in text
