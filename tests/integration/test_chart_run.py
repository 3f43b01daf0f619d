"""Every container the chart renders, started as the kubelet would start it (issue 16 §1).

One scenario (minimal: the included PostgreSQL, artifacts and payload log on PVCs) runs
every container: real MLflow with registered diecast versions stands behind the chart's
MLflow Service, a real PostgreSQL (initialised with the PostgreSQL container's rendered
POSTGRES_* env) behind its PostgreSQL Service. The canary scenario adds one container (the
canary predictor), which runs too; the other scenarios only build their process specs.
The report table prints with `-s` (`make chart-run`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import RegisteredProject
from tests.support.chart_run import (
    CLEAN_ERROR,
    Plan,
    Result,
    plan,
    postgres_init,
    report,
    run,
)
from tests.support.chart_run_process import sandbox_ready
from tests.support.chart_run_render import render, scenarios
from tests.support.chart_run_spec import ProcessSpec

pytestmark = [pytest.mark.integration]

POSTGRES = "StatefulSet/castml-postgresql/postgresql"
KFP_HOOK = "Job/castml-kfp-schedule/schedule-diecast"
COLLECTOR = "Deployment/castml-collector/collector"
MLFLOW = "Deployment/castml-mlflow/mlflow"
CANARY = "InferenceService/diecast/canary-predictor/kserve-container"
SKIP_POSTGRES = {
    POSTGRES: "the PostgreSQL image itself (we do not build it): a real PostgreSQL from "
    "tests/support/postgres_server.py stands behind its Service, initialised with its env"
}
# The recurring-run hook talks to KFP, which is not here: it must fail with a named error.
EXPECT = {KFP_HOOK: CLEAN_ERROR}
# What operators create for the production scenario's existingSecrets.
OPERATOR_SECRETS = {
    "castml-mlflow-db": {"uri": "postgresql://mlflow:pw@db.example.com:5432/mlflow"},
    "castml-s3": {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "key"},
    "castml-collector-token": {"token": "t" * 48},
    "castml-webhook": {"secret": "s" * 48},
}


@pytest.fixture(scope="module")
def sandbox() -> None:
    reason = sandbox_ready()
    if reason:
        pytest.skip(reason)


def _port(uri: str) -> int:
    return int(uri.rstrip("/").rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def minimal_run(
    sandbox: None, registered_diecast: RegisteredProject, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Plan, list[Result]]]:
    from tests.support.postgres_server import PostgresServer

    objects = render("minimal")
    init = postgres_init(objects)
    run_dir = tmp_path_factory.mktemp("chart-run-minimal")
    run_dir.chmod(0o755)  # the containers' users must reach their volumes under it
    with PostgresServer.start(
        user=init["POSTGRES_USER"], database=init["POSTGRES_DB"], password=init["POSTGRES_PASSWORD"]
    ) as pg:
        external = {"castml-mlflow": _port(registered_diecast.uri), "castml-postgresql": pg.port}
        the_plan = plan(objects, run_dir, "minimal", external=external, skip=SKIP_POSTGRES)
        try:
            yield the_plan, run(the_plan, run_dir, EXPECT)
        finally:
            _drop_webhooks(registered_diecast.uri, "castml-rollout-diecast")


def test_every_container_of_the_minimal_scenario_starts(
    minimal_run: tuple[Plan, list[Result]], record_property: Callable[[str, object], None]
) -> None:
    the_plan, results = minimal_run
    table = report(results, "== chart-run: minimal")
    print("\n" + table)
    record_property("chart_run_report", table)
    assert not the_plan.unmapped, f"Service addresses nothing serves: {the_plan.unmapped}"
    assert [r for r in results if r.status == "failed"] == [], table
    statuses = {r.ref: r.status for r in results}
    assert statuses[POSTGRES] == "skipped"
    assert all(s == "passed" for ref, s in statuses.items() if ref != POSTGRES), table


def test_the_canary_predictor_starts(
    sandbox: None, registered_diecast: RegisteredProject, tmp_path: Path
) -> None:
    """The canary scenario's one extra container, pinned to the fixture's versions."""
    v1, v2 = registered_diecast.versions[:2]
    objects = render(
        "canary",
        (f"projects.diecast.modelVersion={v1}", f"projects.diecast.canary.modelVersion={v2}"),
    )
    tmp_path.chmod(0o755)
    the_plan = plan(
        objects, tmp_path, "canary", external={"castml-mlflow": _port(registered_diecast.uri)}
    )
    results = run(the_plan, tmp_path, only={CANARY})
    table = report(results, "== chart-run: canary (the canary predictor only)")
    print("\n" + table)
    assert [r.status for r in results] == ["passed"], table


def _wrong_command(spec: ProcessSpec) -> ProcessSpec:
    return dataclasses.replace(spec, argv=[*spec.argv[:-3], "serve", *spec.argv[-2:]])


def _missing_backend_uri(spec: ProcessSpec) -> ProcessSpec:
    # The MLflow image's entry script needs its database: it must stop and say so.
    env = {k: v for k, v in spec.env.items() if k != "MLFLOW_BACKEND_STORE_URI"}
    return dataclasses.replace(spec, env=env)


def _home_outside_volumes(spec: ProcessSpec) -> ProcessSpec:
    return dataclasses.replace(spec, env={**spec.env, "CASTML_HOME": "/var/lib/castml-elsewhere"})


@pytest.mark.parametrize(
    ("ref", "breakage", "cause"),
    [
        (COLLECTOR, _wrong_command, "No such command 'serve'"),
        (MLFLOW, _missing_backend_uri, "MLFLOW_BACKEND_STORE_URI"),
        (COLLECTOR, _home_outside_volumes, "Read-only file system"),
    ],
    ids=["wrong command", "missing env var", "write outside the volumes"],
)
def test_a_broken_render_is_reported_failed(
    ref: str,
    breakage: Callable[[ProcessSpec], ProcessSpec],
    cause: str,
    sandbox: None,
    registered_diecast: RegisteredProject,
    tmp_path: Path,
) -> None:
    """The harness can fail: a container broken three ways must not pass."""
    objects = render("minimal")
    tmp_path.chmod(0o755)
    the_plan = plan(
        objects, tmp_path, "minimal", external={"castml-mlflow": _port(registered_diecast.uri)}
    )
    container = next(s for s in the_plan.specs if s.ref == ref)
    if breakage is _wrong_command:
        assert container.argv[-4:] == ["collector", "run", "--port", container.argv[-1]]
    the_plan.specs = [breakage(container)]
    results = run(the_plan, tmp_path, only={ref}, start_cap_s=60)
    table = report(results, f"== chart-run: {ref}, broken ({breakage.__name__})")
    print("\n" + table)
    assert [r.status for r in results] == ["failed"], table
    # ... and for the reason it was broken, not another (e.g. an interpreter not found).
    assert cause in results[0].log_tail + results[0].detail, results[0].log_tail


def settings_env_names() -> set[str]:
    """Every CASTML_* variable some settings class reads (one class per deployable)."""
    import castml.settings
    import monitoring.settings
    import serving.settings
    import studio.settings
    import ui.settings

    classes: list[type] = [castml.settings.PlatformSettings]
    names: set[str] = set()
    while classes:
        cls = classes.pop()
        classes += cls.__subclasses__()
        prefix = str(cls.model_config.get("env_prefix", "")).upper()  # type: ignore[attr-defined]
        names |= {f"{prefix}{field}".upper() for field in cls.model_fields}  # type: ignore[attr-defined]
    # imported for their subclasses
    assert serving.settings and monitoring.settings and studio.settings and ui.settings
    return names


@pytest.mark.parametrize("scenario", scenarios())
def test_every_rendered_castml_variable_is_read_by_a_settings_class(scenario: str) -> None:
    """An env var the code does not read is a typo or a leftover: name container and var."""
    from tests.support.chart_run_render import workloads

    known = settings_env_names()
    unread = []
    for w in workloads(render(scenario, ("knowledge.enabled=true",))):
        env = w.container.get("env", [])
        # A variable that only feeds another's $(NAME) expansion is read by the kubelet.
        expanded = " ".join(str(e.get("value", "")) for e in env)
        unread += [
            f"{w.ref}: {e['name']}"
            for e in env
            if e["name"].startswith("CASTML_")
            and e["name"] not in known
            and f"$({e['name']})" not in expanded
        ]
    assert unread == []


@pytest.mark.parametrize("scenario", scenarios())
def test_every_scenario_builds_its_process_specs(scenario: str, tmp_path: Path) -> None:
    """No launch: every container of every scenario becomes a process (or says why not)."""
    objects = render(scenario)
    external = {"castml-mlflow": 5000, "castml-postgresql": 5432}
    the_plan = plan(
        objects, tmp_path, scenario, external=external, secrets=OPERATOR_SECRETS, skip=SKIP_POSTGRES
    )
    print("\n" + report(the_plan.skipped, f"== {scenario}: skipped"))
    assert not the_plan.unmapped
    assert [r for r in the_plan.skipped if r.ref != POSTGRES] == []
    for spec in the_plan.specs:
        assert spec.uid != 0 and spec.argv, spec.ref
        # Every chart Service is on loopback now; only KFP (not the chart's) keeps its name.
        left = [v for v in [*spec.argv, *spec.env.values()] if ".svc.cluster.local" in v]
        assert all("kubeflow" in v for v in left), (spec.ref, left)


KNOWLEDGE = "InferenceService/diecast-kb/predictor/kserve-container"
KB_ROLLOUT = "Deployment/castml-rollout-diecast-kb/rollout"


def _drop_webhooks(uri: str, *names: str) -> list[str]:
    """The harness's reconcilers register webhooks to loopback ports that close with them:
    the URLs they had, and deleted so that the session's MLflow delivers nowhere dead."""
    from castml import registry

    client = registry.client(uri)
    urls = []
    for hook in client.list_webhooks(max_results=100):
        if hook.name in names:
            urls.append(hook.url)
            client.delete_webhook(hook.webhook_id)
    return urls


def test_the_knowledge_service_starts(
    sandbox: None, registered_diecast: RegisteredProject, tmp_path: Path
) -> None:
    """The knowledge InferenceService (off by default) on a registered `diecast-kb` index,
    pinned by number so that no alias another test relies on moves, and its rollout
    reconciler, which registers its own webhook in MLflow for `diecast-kb`."""
    from castml.knowledge.index_store import build_index_from_corpus, save_index
    from castml.knowledge.tokenizing import KnowledgeTokenizer
    from tests.support.kb_versions import register_kb_version
    from tests.unit.test_knowledge_parsing import write_fixture_corpus

    index = build_index_from_corpus(write_fixture_corpus(tmp_path / "corpus"), KnowledgeTokenizer())
    version = register_kb_version(
        registered_diecast.uri,
        "diecast",
        save_index(index, tmp_path / "index"),
        corpus_hash=str(index.manifest["corpus_hash"]),
    )
    objects = render("minimal", ("knowledge.enabled=true", f"knowledge.modelVersion={version}"))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    tmp_path.chmod(0o755)
    run_dir.chmod(0o755)
    the_plan = plan(
        objects, run_dir, "minimal", external={"castml-mlflow": _port(registered_diecast.uri)}
    )
    try:
        results = run(the_plan, run_dir, only={KNOWLEDGE, KB_ROLLOUT})
    finally:
        hooks = _drop_webhooks(registered_diecast.uri, "castml-rollout-diecast-kb")
    table = report(results, "== chart-run: the knowledge service and its reconciler")
    print("\n" + table)
    assert {r.ref: r.status for r in results} == {KNOWLEDGE: "passed", KB_ROLLOUT: "passed"}, table
    [kb_hook] = hooks
    assert kb_hook.startswith("http://127.0.0.1:") and kb_hook.endswith("/webhooks/mlflow")
