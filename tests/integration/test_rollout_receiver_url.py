"""`castml rollout run --receiver-url`: the chart's reconcilers (one per `<project>` and one per
`<project>-kb`) register their own MLflow webhook, against a real MLflow on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from castml.cli.rollout_cmd import register_once
from tests.support.ports import free_port

pytestmark = [pytest.mark.integration]

SECRET = "s" * 48


def _hooks(uri: str) -> dict[str, str]:
    from castml import registry

    return {h.name: h.url for h in registry.client(uri).list_webhooks(max_results=100)}


@pytest.fixture
def clean_hooks(mlflow_server: str) -> Iterator[str]:
    """Deletes this test's webhooks: the session's MLflow must not deliver to dead ports."""
    from castml import registry

    yield mlflow_server
    client = registry.client(mlflow_server)
    for hook in client.list_webhooks(max_results=100):
        if hook.name.startswith("castml-rollout-receiver-test"):
            client.delete_webhook(hook.webhook_id)


def test_each_reconciler_registers_its_own_webhook_once(clean_hooks: str) -> None:
    uri = clean_hooks
    kb, predictor = "receiver-test-kb", "receiver-test"
    first = register_once(uri, kb, "http://kb.example:8080/", SECRET)
    assert first is not None
    assert register_once(uri, predictor, "http://predictor.example:8080", SECRET) is not None
    # A restarted reconciler replaces its webhook, and leaves the other's alone.
    again = register_once(uri, kb, "http://kb.example:8080", SECRET)
    assert again not in (None, first)
    hooks = {k: v for k, v in _hooks(uri).items() if k.startswith("castml-rollout-receiver-test")}
    assert hooks == {
        f"castml-rollout-{kb}": "http://kb.example:8080/webhooks/mlflow",
        f"castml-rollout-{predictor}": "http://predictor.example:8080/webhooks/mlflow",
    }


def test_an_unreachable_mlflow_is_no_crash() -> None:
    assert register_once(f"http://127.0.0.1:{free_port()}", "x-kb", "http://x:1", SECRET) is None


def _run(*args: str, secret: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CASTML_WEBHOOK_SECRET"}
    env["CASTML_MLFLOW_URI"] = f"http://127.0.0.1:{free_port()}"
    if secret is not None:
        env["CASTML_WEBHOOK_SECRET"] = secret
    return subprocess.run(
        [sys.executable, "-m", "castml.cli.main", "rollout", "run", *args],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("url", "secret", "named"),
    [
        ("ftp://mlflow:8080", SECRET, "is not a base URL"),
        ("http://r:8080/webhooks/mlflow", SECRET, "is not a base URL"),
        ("http://r:8080", None, "CASTML_WEBHOOK_SECRET"),
    ],
)
def test_a_bad_receiver_url_is_one_error_line(url: str, secret: str | None, named: str) -> None:
    result = _run("--receiver-url", url, secret=secret)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --receiver-url"), result.stderr
    assert named in lines[0]
