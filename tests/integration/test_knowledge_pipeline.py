"""The knowledge pipeline through kfp.local against a real MLflow server, on a small corpus:
8 real documents (PDF, Markdown, HTML; Korean and English) and the labelled queries whose
relevant passages are all in them.

The project is a copy of diecast's spec under its own name, so `<name>-kb`'s versions are
this module's own on the session's MLflow server: v1 the first build (@champion), v2 a
deliberately worse index (wordllama, 120-character chunks) that the gate refuses.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from castml.errors import RegistryError
from castml.knowledge.kb_registration import kb_experiment_name, version_summary
from castml.knowledge.kb_steps import PACKAGED_CORPUS
from castml.protocol.mlflow_names import (
    CHALLENGER,
    CHAMPION,
    KB_EVALUATION_ARTIFACT,
    TAG_DATA_HASH,
    TAG_GATE,
    TAG_PIPELINE_RUN,
    TAG_RETRAIN_REASON,
    kb_model_name,
)
from pipelines.runner import PipelineError, run_knowledge_local

pytestmark = pytest.mark.integration

PROJECT = "kbtest"
DOCUMENTS = (
    "manual-en.pdf",
    "manual-ko.pdf",
    "checklist-gas_porosity-en.md",
    "checklist-gas_porosity-ko.md",
    "checklist-cold_shut-en.md",
    "checklist-cold_shut-ko.md",
    "guide-pressure-en.html",
    "guide-pressure-ko.html",
)


def small_corpus(dest: Path) -> Path:
    (dest / "documents").mkdir(parents=True)
    (dest / "eval").mkdir()
    for name in DOCUMENTS:
        shutil.copy(PACKAGED_CORPUS / "documents" / name, dest / "documents" / name)
    shutil.copy(PACKAGED_CORPUS / "catalog.json", dest / "catalog.json")
    kept = {name.rsplit(".", 1)[0] for name in DOCUMENTS}
    lines = (PACKAGED_CORPUS / "eval" / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    queries = [
        line
        for line in lines
        if line.strip()
        and (relevant := json.loads(line)["relevant"])
        and all(p["document"] in kept for p in relevant)
    ]
    assert len(queries) >= 20
    (dest / "eval" / "queries.jsonl").write_text("\n".join(queries) + "\n", encoding="utf-8")
    return dest


@dataclass(frozen=True)
class Built:
    uri: str
    spec: Path
    corpus: Path
    root: Path
    first: int
    worse: int
    tasks: list[str]


@pytest.fixture(scope="module")
def built(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    work = tmp_path_factory.mktemp("kb")
    raw = yaml.safe_load((Path("castml/projects/diecast.yaml")).read_text())
    raw["name"] = PROJECT
    spec = work / f"{PROJECT}.yaml"
    spec.write_text(yaml.safe_dump(raw, allow_unicode=True))
    corpus = small_corpus(work / "corpus")
    root = work / "kfp-root"
    events: list[tuple[str, dict[str, Any]]] = []
    first = run_knowledge_local(
        str(spec),
        mlflow_server,
        root,
        corpus_dir=str(corpus),
        on_progress=lambda e, d: events.append((e, d)),
    )
    worse = run_knowledge_local(
        str(spec),
        mlflow_server,
        root,
        corpus_dir=str(corpus),
        embedding_model="wordllama",
        chunk_max_chars=120,
        chunk_overlap=20,
    )
    yield Built(
        mlflow_server,
        spec,
        corpus,
        root,
        first.version,
        worse.version,
        [d["task"] for e, d in events if e == "task"],
    )


def test_first_build_is_champion_with_lineage_and_metrics(built: Built) -> None:
    client = MlflowClient(built.uri, registry_uri=built.uri)
    name = kb_model_name(PROJECT)
    assert built.tasks == ["parse", "chunk", "index", "evaluate", "register"]
    assert built.first == 1
    assert client.get_model_version_by_alias(name, CHAMPION).version == "1"
    version = client.get_model_version(name, "1")
    assert version.tags[TAG_GATE].startswith("passed")
    assert version.tags[TAG_RETRAIN_REASON] == "initial"
    assert version.tags[TAG_PIPELINE_RUN]
    run = client.get_run(str(version.run_id))
    assert client.get_experiment(run.info.experiment_id).name == kb_experiment_name(PROJECT)
    for mode in ("bm25", "dense", "hybrid", "hybrid_rescored"):
        for metric in ("recall_at_5", "recall_at_20", "ndcg_at_10", "mrr"):
            assert 0.0 <= run.data.metrics[f"{mode}.{metric}"] <= 1.0
    assert run.data.metrics["hybrid_rescored.ndcg_at_10"] >= 0.60
    assert run.data.params["embedding.model"] == "e5"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert KB_EVALUATION_ARTIFACT in artifacts
    summary = version_summary(PROJECT, 1, built.uri)
    assert summary.evaluation.champion_version is None
    assert len(version.tags[TAG_DATA_HASH]) == 64


def test_worse_index_gets_no_alias(built: Built) -> None:
    client = MlflowClient(built.uri, registry_uri=built.uri)
    name = kb_model_name(PROJECT)
    assert built.worse == built.first + 1
    version = client.get_model_version(name, str(built.worse))
    assert version.tags[TAG_GATE].startswith("failed"), version.tags[TAG_GATE]
    assert "dense.ndcg_at_10" in version.tags[TAG_GATE]
    aliases = client.get_registered_model(name).aliases
    assert aliases[CHAMPION] == str(built.first)
    assert aliases[CHALLENGER] == str(built.first)
    summary = version_summary(PROJECT, built.worse, built.uri)
    assert summary.aliases == []
    assert summary.evaluation.champion_version == built.first


def test_corrupt_pdf_fails_at_parse_naming_it_and_registers_nothing(
    built: Built, tmp_path: Path
) -> None:
    corpus = shutil.copytree(built.corpus, tmp_path / "corpus")
    (corpus / "documents" / "broken-manual.pdf").write_bytes(b"%PDF-1.7\nnot a pdf at all")
    client = MlflowClient(built.uri, registry_uri=built.uri)
    before = len(client.search_model_versions(f"name='{kb_model_name(PROJECT)}'"))
    with pytest.raises(PipelineError) as failure:
        run_knowledge_local(str(built.spec), built.uri, tmp_path / "root", corpus_dir=str(corpus))
    message = str(failure.value)
    assert "task 'parse'" in message
    assert "broken-manual.pdf" in message
    after = len(client.search_model_versions(f"name='{kb_model_name(PROJECT)}'"))
    assert after == before


def _ask(built: Built, question: str, *extra: str) -> dict[str, Any]:
    from castml.cli.main import app

    result = CliRunner().invoke(
        app,
        ["kb", "ask", question, "--project", str(built.spec), "--json", *extra],
        env={"CASTML_MLFLOW_URI": built.uri},
    )
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.output)
    return answer


def test_ask_answers_korean_and_english_citing_real_passages(built: Built) -> None:
    english = _ask(built, "What causes gas porosity in aluminium die castings?")
    assert english["language"] == "en"
    assert english["model_version"] == str(built.first)
    documents = {s["document"] for s in english["sources"]}
    assert documents & {"manual-en", "checklist-gas_porosity-en"}, english
    assert "[" in english["answer"]
    shot = built.root.parent / "shot.json"
    shot.write_text(
        json.dumps(
            {
                "prediction": {"class": "defect", "probability": 0.91},
                "top_features": [{"name": "Process_Pressure", "value": 120.3, "contribution": 0.8}],
                "features": {"Process_Pressure": 120.3},
            }
        )
    )
    korean = _ask(
        built, "가스 기공 불량의 원인은 무엇인가요?", "--shot", str(shot), "--version", "1"
    )
    assert korean["language"] == "ko"
    assert {s["document"] for s in korean["sources"]} & {"manual-ko", "checklist-gas_porosity-ko"}
    assert any("Process_Pressure" in r for r in korean["recommendations"]), korean


def test_ask_names_an_unknown_version_in_one_line(built: Built) -> None:
    from castml.cli.main import app

    result = CliRunner().invoke(
        app,
        ["kb", "ask", "flash?", "--project", str(built.spec), "--version", "99"],
        env={"CASTML_MLFLOW_URI": built.uri},
    )
    assert isinstance(result.exception, RegistryError)
    assert "no version 99" in str(result.exception)
