"""Property-based fuzzing of every public ingest and inference endpoint (issue 10, Tests).

Real servers on 127.0.0.1, started once for the session: a predictor pinned to the
@champion of a real MLflow registry (`registered_diecast`), a transformer and an
explainer in front of it, and a collector. Each endpoint gets valid requests built from
the spec, mutations of them, broken JSON text and random JSON, with hostile headers
(see tests/support/fuzz_*.py). The invariant is in `tests.support.fuzz_invariant`.

CI runs CASTML_FUZZ_EXAMPLES (default 150) examples per endpoint, derandomized so a run
is repeatable; `make fuzz` runs 10,000 and prints the answers by status per endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from castml.cli.local_processes import ServerProcess, start_server
from tests.support import fuzz_collector, fuzz_serving
from tests.support.collector_process import CollectorProcess
from tests.support.fuzz_invariant import Tally, send
from tests.support.fuzz_request import FuzzRequest

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("CASTML_FUZZ_EXAMPLES", "150"))
ENDPOINTS: dict[str, Callable[[], st.SearchStrategy[FuzzRequest]]] = {
    "transformer :predict": fuzz_serving.transformer_predict,
    "transformer v2 infer": fuzz_serving.transformer_infer,
    "explainer :explain": fuzz_serving.explainer_explain,
    "predictor v2 infer": fuzz_serving.predictor_infer,
    "predictor load": fuzz_serving.predictor_load,
    "collector events binary": fuzz_collector.events_binary,
    "collector events structured": fuzz_collector.events_structured,
    "collector feedback": fuzz_collector.feedback,
}


@dataclass
class Targets:
    clients: dict[str, httpx.Client]


@pytest.fixture(scope="session")
def fuzz_targets(
    registered_diecast: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Targets]:
    """Every server under fuzz, started once: serving from MLflow, and a collector."""
    home = tmp_path_factory.mktemp("fuzz-serving")
    env = {
        "CASTML_MLFLOW_URI": registered_diecast.uri,
        "CASTML_HOME": str(home),
        "CASTML_MODEL_VERSION": "champion",
    }
    servers: list[ServerProcess] = []
    collector = CollectorProcess(tmp_path_factory.mktemp("fuzz-collector"))
    clients: dict[str, httpx.Client] = {}
    try:
        predictor = start_server("predictor", env, home / "logs")
        servers.append(predictor)
        for role in ("transformer", "explainer"):
            servers.append(start_server(role, env, home / "logs", predictor=predictor))
        collector.start()
        urls = {s.role: s.url for s in servers} | {"collector": collector.client.base_url}
        clients = {role: httpx.Client(base_url=str(url), timeout=60) for role, url in urls.items()}
        yield Targets(clients)
    finally:
        for client in clients.values():
            client.close()
        collector.stop()
        for server in reversed(servers):
            server.stop()


class SummaryPlugin:
    """Prints the tally in pytest's terminal summary, after every fuzz test has run."""

    def __init__(self, tally: Tally, report: Path) -> None:
        self.tally = tally
        self.report = report

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.tally.statuses:
            return
        terminalreporter.section(f"fuzz: answers by status ({EXAMPLES} examples per endpoint)")
        for line in self.tally.summary():
            terminalreporter.write_line(line)
        self.tally.write_report(self.report)
        terminalreporter.write_line(f"reproducers of every violation: {self.report}")


@pytest.fixture(scope="session")
def tally(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Tally:
    result = Tally()
    report = tmp_path_factory.getbasetemp() / "fuzz-report.json"
    pytestconfig.pluginmanager.register(SummaryPlugin(result, report), "castml-fuzz-summary")
    return result


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_fuzz_endpoint(endpoint: str, fuzz_targets: Targets, tally: Tally) -> None:
    """Never a 5xx (503 only with Retry-After), every 4xx names its problem."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(request=ENDPOINTS[endpoint]())
    def fuzz(request: FuzzRequest) -> None:
        tally.record(endpoint, request, send(fuzz_targets.clients[request.target], request))

    fuzz()
    failures = tally.failures_of(endpoint)
    assert not failures, f"{endpoint} broke the invariant:\n" + "\n".join(failures)
