"""Run what the chart renders: every container as the kubelet would start it, locally.

    plan = chart_run.plan(objects, run_dir, external={"castml-mlflow": 5000})
    results = chart_run.run(plan, expect={...})
    print(chart_run.report(results))

`plan` turns one rendered scenario into process specs (chart_run_spec), with every
Service name on loopback (chart_run_network); `run` starts the long-running containers in
parallel in their sandboxes (chart_run_launch: non-root, read-only root, only the volumes
writable), waits for their probes, then runs the Jobs, CronJobs and `helm test` pods to
their exit, then checks that the long-running ones still pass their probes.

Each container ends passed, failed (with its log tail) or skipped (with why).
`python -m tests.support.chart_run` builds the specs of every CI scenario (no launch);
the runs need an MLflow with models: `make chart-run` (tests/integration/test_chart_run.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.chart_run_network import (
    HostRewriter,
    PortPool,
    listen_ports,
    service_links,
    services,
)
from tests.support.chart_run_process import Running, await_started, probe_once
from tests.support.chart_run_render import Obj, render, scenarios, workloads
from tests.support.chart_run_spec import NotRunnableError, Objects, ProcessSpec, VolumeMaker, build

# What a container must do to pass. READY: start and pass its probes (long-running);
# EXIT_0: finish with 0; CLEAN_ERROR: fail with an `error:` line, no traceback.
READY, EXIT_0, CLEAN_ERROR = "ready", "exit 0", "clean error"
# Signs of a write outside the volumes, whatever the expected outcome.
EROFS_SIGNS = ("Read-only file system", "EROFS")


@dataclass
class Result:
    ref: str
    status: str  # passed | failed | skipped
    detail: str
    log_tail: str = ""


@dataclass
class Plan:
    scenario: str
    specs: list[ProcessSpec]
    skipped: list[Result]
    unmapped: set[str] = field(default_factory=set)  # service addresses nothing serves


def postgres_init(objects: list[Obj]) -> dict[str, str]:
    """POSTGRES_USER / _DB / _PASSWORD of the chart's PostgreSQL container, resolved: what
    its image would initialise, so a stand-in server can be started the same way."""
    objs = Objects.of(objects, {})
    for w in workloads(objects):
        if w.kind == "StatefulSet" and "postgres" in w.container["image"]:
            env: dict[str, str] = {}
            for e in w.container.get("env", []):
                if e["name"].startswith("POSTGRES_"):
                    ref = e.get("valueFrom", {}).get("secretKeyRef")
                    env[e["name"]] = (objs.key("Secret", ref) if ref else e["value"]) or ""
            return env
    return {}


def plan(
    objects: list[Obj],
    run_dir: Path,
    scenario: str = "",
    *,
    external: dict[str, int] | None = None,
    secrets: dict[str, dict[str, str]] | None = None,
    skip: dict[str, str] | None = None,
) -> Plan:
    """Process specs for every container of a render.

    external: Service name -> loopback port of a server the caller runs in its place.
    secrets: existingSecrets the operator would create (name -> key -> value).
    skip: ref prefix -> reason (e.g. the PostgreSQL container, run by the caller instead).
    """
    ws, pool = workloads(objects), PortPool()
    own = {w.ref: {p: pool.take() for p in sorted(listen_ports(w))} for w in ws}
    addresses = services(objects, ws, own, external or {})
    hosts, objs = HostRewriter(addresses), Objects.of(objects, secrets or {})
    volumes = VolumeMaker(run_dir / "volumes", objs)
    api_port = pool.take()  # no Kubernetes API here: a closed loopback port stands for it
    kubernetes = {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(api_port),
        "KUBERNETES_PORT": f"tcp://127.0.0.1:{api_port}",
    }
    result = Plan(scenario, [], [])
    for w in ws:
        reason = next((r for prefix, r in (skip or {}).items() if w.ref.startswith(prefix)), None)
        if reason:
            result.skipped.append(Result(w.ref, "skipped", reason))
            continue
        links = dict(kubernetes)
        if w.pod_spec.get("enableServiceLinks", True):
            links |= service_links(addresses, w.namespace)
        try:
            result.specs.append(build(w, objs, volumes, links, own[w.ref], hosts))
        except NotRunnableError as exc:
            result.skipped.append(Result(w.ref, "skipped", str(exc)))
        except ValueError as exc:
            result.skipped.append(Result(w.ref, "failed", str(exc)))
    result.unmapped = hosts.unmapped
    return result


def _judge_exit(running: Running, expect: str, deadline_s: float) -> Result:
    code = running.wait(deadline_s)
    tail, ref = running.tail(), running.spec.ref
    if code is None:
        return Result(ref, "failed", f"still running after {deadline_s:.0f}s", tail)
    log = running.log.read_text(errors="replace")
    if any(sign in log for sign in EROFS_SIGNS):
        return Result(ref, "failed", f"exit {code}: wrote outside its volumes (EROFS)", tail)
    if expect == EXIT_0:
        return Result(ref, "passed" if code == 0 else "failed", f"exit {code}", tail)
    error_lines = [ln for ln in log.splitlines() if ln.lstrip().lower().startswith("error:")]
    if code != 0 and error_lines and "Traceback" not in log:
        return Result(
            ref,
            "passed",
            f"failed cleanly as expected (exit {code}): {error_lines[0].strip()}",
            tail,
        )
    return Result(
        ref, "failed", f"exit {code}; expected a clean failure with an `error:` line", tail
    )


def _recheck(running: Running) -> Result:
    """After the jobs ran: still up, still passing its readiness and liveness probes."""
    ref, tail = running.spec.ref, running.tail()
    if running.exited() is not None:
        return Result(ref, "failed", f"exited with {running.exited()} after it started", tail)
    if any(sign in running.log.read_text(errors="replace") for sign in EROFS_SIGNS):
        return Result(ref, "failed", "wrote outside its volumes (EROFS)", tail)
    for probe in running.spec.probes:
        if probe.kind != "startup" and (problem := probe_once(probe, running)):
            return Result(ref, "failed", f"{probe.kind} probe failed after start: {problem}", tail)
    kinds = sorted({f"{p.kind}:{p.handler}" for p in running.spec.probes}) or ["running, port open"]
    return Result(ref, "passed", "ready (" + ", ".join(kinds) + ")")


@contextmanager
def _started(specs: list[ProcessSpec], run_dir: Path) -> Iterator[list[Running]]:
    started: list[Running] = []
    try:
        for spec in specs:
            started.append(Running(spec, run_dir))
        yield started
    finally:
        with ThreadPoolExecutor(max(len(started), 1)) as pool:
            list(pool.map(lambda r: r.stop(), started))


def run(
    the_plan: Plan,
    run_dir: Path,
    expect: dict[str, str] | None = None,
    only: set[str] | None = None,
    start_cap_s: float = 240.0,
    job_deadline_s: float = 240.0,
) -> list[Result]:
    """Start, probe and judge every planned container (or those whose ref is in `only`)."""
    expect = expect or {}
    chosen = [s for s in the_plan.specs if only is None or s.ref in only]
    servers = [s for s in chosen if not s.completes]
    jobs = [s for s in chosen if s.completes]
    results: dict[str, Result] = {}
    with _started(servers, run_dir) as running, ThreadPoolExecutor(8) as pool:
        started = list(pool.map(lambda r: (r, await_started(r, start_cap_s)), running))
        for r, problem in started:
            if problem:
                results[r.spec.ref] = Result(r.spec.ref, "failed", problem, r.tail())
        with _started(jobs, run_dir) as finished:
            judged = pool.map(
                lambda r: _judge_exit(r, expect.get(r.spec.ref, EXIT_0), job_deadline_s), finished
            )
            results.update({j.ref: j for j in judged})
        for r, problem in started:
            if not problem:
                results[r.spec.ref] = _recheck(r)
    skipped = [s for s in the_plan.skipped if only is None or s.ref in only]
    return [*skipped, *(results[s.ref] for s in chosen)]


def report(results: list[Result], title: str = "") -> str:
    width = max((len(r.ref) for r in results), default=10)
    lines = [title] if title else []
    lines += [f"{r.status.upper():8} {r.ref:{width}}  {r.detail}" for r in results]
    for r in results:
        if r.status == "failed" and r.log_tail:
            lines += [f"--- {r.ref} (log tail)", r.log_tail]
    return "\n".join(lines)


def main() -> int:
    """Build the process specs of every CI scenario, without launching; print the table."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="chart-run-") as tmp:
        for scenario in scenarios():
            p = plan(render(scenario), Path(tmp) / scenario, scenario)
            rows = [Result(s.ref, "built", " ".join(s.argv)[:100]) for s in p.specs]
            print(report([*rows, *p.skipped], f"== {scenario}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
