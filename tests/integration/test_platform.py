"""`castml up` / `castml down`: the embedded platform in the background, and @champion
moved in MLflow served through the reconciler's own webhook.

Uses the session's MLflow (external to the platform, as CASTML_MLFLOW_URI): `castml up`
starts the collector, predictor, transformer, explainer and reconciler, and registers
the webhook there. The alias is moved back before the test ends: other tests read it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from castml import registry
from castml.cli.main import app
from castml.cli.platform_state import PlatformDir, pid_matches
from castml.spec import load_spec
from tests.support.ports import free_port
from tests.unit.serving.support import valid_record

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _served(predictor_url: str, project: str) -> str | None:
    try:
        answer = httpx.get(f"{predictor_url}/v2/models/{project}", timeout=5)
    except httpx.HTTPError:
        return None
    versions = answer.json().get("versions") if answer.status_code == 200 else None
    return str(versions[0]) if versions else None


def wait_served(predictor_url: str, project: str, version: str, deadline_s: float = 90) -> None:
    """Until the predictor reports `version` (the deadline is generous: no timing asserted)."""
    deadline = time.monotonic() + deadline_s
    while _served(predictor_url, project) != version:
        assert time.monotonic() < deadline, f"version {version} not served in {deadline_s} s"
        time.sleep(0.05)


@pytest.fixture
def platform(tmp_path: Path, registered_diecast: Any) -> Iterator[dict[str, str]]:
    env = {"CASTML_HOME": str(tmp_path), "CASTML_MLFLOW_URI": registered_diecast.uri}
    yield env
    CliRunner().invoke(app, ["down"], env=env)  # whatever the test left running


def test_castml_up_starts_every_part_and_serves_a_champion_moved_in_mlflow(
    platform: dict[str, str], tmp_path: Path, registered_diecast: Any
) -> None:
    runner = CliRunner()
    up = runner.invoke(app, ["up"], env=platform)
    assert up.exit_code == 0, up.output
    state = PlatformDir(tmp_path / "platform").load()
    # The knowledge base joins when the session's registry holds a diecast-kb @champion
    # (the knowledge pipeline's tests may have registered one), and only then.
    client = registry.client(registered_diecast.uri)
    with_kb = registry.alias_version(client, "diecast-kb", registry.CHAMPION) is not None
    parts = {"collector", "predictor", "transformer", "explainer", "rollout", "ui"}
    kb_parts = {"knowledge", "rollout-kb"} if with_kb else set()
    assert state is not None and set(state.parts) == parts | kb_parts
    text = " ".join(up.output.split())
    for part in state.parts.values():
        assert part.url in text and part.healthy()
    assert state.webhook_id and "MLflow webhook" in text

    # Idempotent: a second `up` keeps every process; `--status` only reports.
    again = runner.invoke(app, ["up"], env=platform)
    assert again.exit_code == 0, again.output
    kept = PlatformDir(tmp_path / "platform").load()
    assert kept is not None
    assert {n: p.pid for n, p in kept.parts.items()} == {n: p.pid for n, p in state.parts.items()}
    status = runner.invoke(app, ["up", "--status"], env=platform)
    assert status.exit_code == 0, status.output
    assert "DOWN" not in status.output

    # The public endpoint answers through the transformer -> predictor chain.
    record = {"features": valid_record(load_spec("diecast"))}
    answer = httpx.post(
        f"{state.parts['transformer'].url}/v1/models/diecast:predict", json=record, timeout=30
    )
    assert answer.status_code == 200, answer.text

    predictor = state.parts["predictor"].url
    first, second = (str(v) for v in registered_diecast.versions)
    wait_served(predictor, "diecast", first)
    client = registry.client(registered_diecast.uri)
    try:
        client.set_registered_model_alias("diecast", registry.CHAMPION, second)
        wait_served(predictor, "diecast", second)
    finally:
        client.set_registered_model_alias("diecast", registry.CHAMPION, first)
    wait_served(predictor, "diecast", first)
    receiver = httpx.get(f"{state.parts['rollout'].url}/healthz", timeout=5).json()
    assert receiver["last"]["trigger"].startswith(("webhook:", "periodic"))

    down = runner.invoke(app, ["down"], env=platform)
    assert down.exit_code == 0, down.output
    assert not any(pid_matches(p.pid, p.marker) for p in state.parts.values())
    assert PlatformDir(tmp_path / "platform").load() is None
    hooks = [h.webhook_id for h in client.list_webhooks(max_results=100)]
    assert state.webhook_id not in hooks


def test_the_knowledge_base_has_its_own_reconciler_and_webhook(
    platform: dict[str, str], tmp_path: Path, registered_diecast: Any
) -> None:
    """With a diecast-kb @champion, `castml up` adds the knowledge base and a reconciler for
    it; a move of diecast-kb's @champion in MLflow is then served by the knowledge role."""
    from castml.knowledge.index_store import build_index_from_corpus, save_index
    from castml.knowledge.tokenizing import KnowledgeTokenizer
    from tests.support.kb_versions import register_kb_version, set_champion
    from tests.unit.test_knowledge_parsing import write_fixture_corpus

    uri = registered_diecast.uri
    index = build_index_from_corpus(write_fixture_corpus(tmp_path / "corpus"), KnowledgeTokenizer())
    index_dir = save_index(index, tmp_path / "index")
    corpus_hash = str(index.manifest["corpus_hash"])
    client = registry.client(uri)
    before = registry.alias_version(client, "diecast-kb", registry.CHAMPION)
    first = register_kb_version(uri, "diecast", index_dir, corpus_hash=corpus_hash, champion=True)
    second = register_kb_version(uri, "diecast", index_dir, corpus_hash=corpus_hash)
    try:
        up = CliRunner().invoke(app, ["up"], env=platform)
        assert up.exit_code == 0, up.output
        state = PlatformDir(tmp_path / "platform").load()
        assert state is not None and {"knowledge", "rollout-kb"} <= set(state.parts)
        assert state.kb_webhook_id and state.kb_webhook_id != state.webhook_id
        knowledge = state.parts["knowledge"].url
        wait_served(knowledge, "diecast-kb", first)
        set_champion(uri, "diecast", second)
        wait_served(knowledge, "diecast-kb", second)
        receiver = httpx.get(f"{state.parts['rollout-kb'].url}/healthz", timeout=5).json()
        assert receiver["last"]["trigger"].startswith(("webhook:", "periodic"))
        down = CliRunner().invoke(app, ["down"], env=platform)
        assert down.exit_code == 0, down.output
        hooks = [h.webhook_id for h in client.list_webhooks(max_results=100)]
        assert state.kb_webhook_id not in hooks and state.webhook_id not in hooks
    finally:
        set_champion(uri, "diecast", str(before.version) if before else first)


def test_register_webhook_works_against_the_embedded_mlflow(registered_diecast: Any) -> None:
    """The embedded MLflow starts with the chart's webhook settings (plain http, loopback)."""
    env = {"CASTML_MLFLOW_URI": registered_diecast.uri, "CASTML_WEBHOOK_SECRET": "s3cret"}
    url = f"http://127.0.0.1:{free_port()}/webhooks/mlflow"
    shown = CliRunner().invoke(app, ["rollout", "register-webhook", "--url", url], env=env)
    assert shown.exit_code == 0, shown.output
    webhook_id = shown.output.split()[1]
    client = registry.client(registered_diecast.uri)
    assert client.get_webhook(webhook_id).url == url
    client.delete_webhook(webhook_id)


def test_the_platform_state_round_trips(tmp_path: Path) -> None:
    from castml.cli.platform_state import Part, PlatformState

    state = PlatformState("diecast", "http://m", True, webhook_id="w")
    state.parts["predictor"] = Part("predictor", 1, "http://p", "/h", "log", "serving", {"a": "b"})
    place = PlatformDir(tmp_path)
    place.save(state)
    assert place.load() == state
    assert orjson.loads(place.state_file.read_bytes())["parts"]["predictor"]["extra"] == {"a": "b"}
    secrets = place.secrets()
    assert place.secrets() == secrets and oct(place.secrets_file.stat().st_mode)[-3:] == "600"
