"""`castml up` / `castml down`: the whole embedded platform in the background.

MLflow (SQLite), the collector (with the retrain endpoint), the predictor (logging its
payloads to the collector, as KServe's logger does in a cluster), the transformer, the
explainer, the knowledge base (when `<project>-kb` has a @champion), a rollout reconciler
for the model and one for its knowledge base, whose MLflow webhooks are registered here
once they answer (a move of @champion in the MLflow UI is then served within a second, the
periodic reconcile staying the backstop), and the
web UI (`castml ui`) on the others. Every part is a detached process on loopback;
pids, ports and logs are under `$CASTML_HOME/platform/` (castml.cli.platform_state).

`castml up` is idempotent: parts that answer are kept, missing ones are (re)started
on their recorded ports. `castml up --status` only reports.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from castml.cli.console import console
from castml.cli.platform_state import Part, PlatformDir, PlatformState, stop_pid
from castml.errors import CastmlError
from castml.protocol.mlflow_names import kb_model_name

if TYPE_CHECKING:
    from castml.settings import PlatformSettings

app = typer.Typer()

ORDER = (
    "collector",
    "predictor",
    "transformer",
    "explainer",
    "knowledge",
    "rollout",
    "rollout-kb",
    "ui",
)
# Started only when there is something for them to serve (the others always are): the
# knowledge base and its own reconciler, when `<project>-kb` has a @champion.
OPTIONAL = frozenset({"knowledge", "rollout-kb"})
# One reconciler per served model, each with its webhook: the part it moves, and the model.
RECONCILED = {"rollout": "predictor", "rollout-kb": "knowledge"}
# Ports a part asks for first (KServe's 8080 for the predictor; the settings' defaults for
# the collector and the receiver); a taken one falls back to a free port.
PREFERRED = {
    "predictor": 8080,
    "predictor_grpc": 8081,
    "transformer": 8082,
    "explainer": 8083,
    "knowledge": 8084,
    "collector": 8090,
    "rollout": 8092,
    "rollout-kb": 8093,
    "ui": 8501,
}
CLI = [sys.executable, "-m", "castml.cli.main"]
WEBHOOK_EVENTS = ["model_version_alias.created"]


class NoChampionError(CastmlError):
    """`castml up` needs a version behind @champion to serve."""

    status_code = 409


def _port(state: PlatformState | None, key: str, host: str = "127.0.0.1") -> int:
    """The recorded port (a restart keeps the others' links), else the preferred, else free."""
    from castml.cli.local_processes import free_port
    from castml.mlflow_server import port_in_use

    if state is not None:
        for part in state.parts.values():
            if part.extra.get("port_key") == key and part.extra.get("port"):
                return int(part.extra["port"])
    preferred = PREFERRED[key]
    return free_port() if port_in_use(host, preferred) else preferred


def _base_env(settings: PlatformSettings, uri: str, project: str) -> dict[str, str]:
    return {
        "CASTML_HOME": str(settings.home.resolve()),
        "CASTML_MLFLOW_URI": uri,
        "CASTML_PROJECT": project,
    }


def _start_cli_part(
    name: str,
    args: list[str],
    env: dict[str, str],
    port: int,
    probe: str,
    logs: Path,
    timeout_s: float = 90.0,
) -> Part:
    from castml.cli.local_processes import spawn, wait_ready

    log = logs / f"{name}.log"
    process = spawn([*CLI, *args], {**os.environ, **env}, log, detach=True)
    url = f"http://127.0.0.1:{port}"
    wait_ready(name, process, url + probe, log, timeout_s)
    marker = args[0]
    return Part(name, process.pid, url, probe, str(log), marker, {"port": str(port)})


def _start_part(
    name: str,
    state: PlatformState,
    old: PlatformState | None,
    settings: PlatformSettings,
    tokens: dict[str, str],
    logs: Path,
) -> Part:
    from castml.cli.local_processes import start_server

    env = _base_env(settings, state.tracking_uri, state.project)
    project = state.project
    if name == "collector":
        port = _port(old, "collector")
        env |= {
            "CASTML_COLLECTOR_TOKEN": tokens["collector_token"],
            "CASTML_RETRAIN_TOKEN": tokens["retrain_token"],
            "CASTML_COLLECTOR_DEFAULT_PROJECT": project,
        }
        part = _start_cli_part(
            name, ["collector", "run", "--port", str(port)], env, port, "/healthz", logs
        )
    elif name in RECONCILED:
        port = _port(old, name)
        env |= {
            "CASTML_PROJECT": reconciled_model(name, project),
            "CASTML_PREDICTOR_URL": state.parts[RECONCILED[name]].url,
            "CASTML_ROLLOUT_PORT": str(port),
            "CASTML_WEBHOOK_SECRET": tokens["webhook_secret"],
            "CASTML_ROLLOUT_MODE": "embedded",
        }
        part = _start_cli_part(name, ["rollout", "run"], env, port, "/healthz", logs)
    elif name == "ui":
        # The UI reads what the servers answer (over HTTP) and the collector's Parquet log.
        port = _port(old, "ui")
        env |= {
            "CASTML_TRANSFORMER_URL": state.parts["transformer"].url,
            "CASTML_EXPLAINER_URL": state.parts["explainer"].url,
            "CASTML_PREDICTOR_URL": state.parts["predictor"].url,
            "CASTML_COLLECTOR_URL": state.parts["collector"].url,
            "CASTML_KNOWLEDGE_URL": state.parts["knowledge"].url
            if "knowledge" in state.parts
            else f"http://127.0.0.1:{PREFERRED['knowledge']}",
        }
        args = ["ui", "--port", str(port)]
        part = _start_cli_part(name, args, env, port, "/_stcore/health", logs, timeout_s=120.0)
    elif name == "knowledge":
        port = _port(old, "knowledge")
        # Each query and the sources it cited go to the collector (`castml lineage <kb>`).
        env |= {
            "CASTML_LOGGER_URL": state.parts["collector"].url + "/",
            "CASTML_LOGGER_TOKEN": tokens["collector_token"],
        }
        server = start_server(
            name, env, logs, project=kb_model_name(project), port=port, detach=True
        )
        part = Part(
            name, server.process.pid, server.url, "/v2/health/live", str(server.log), "serving"
        )
        part.extra["port"] = str(port)
    else:
        predictor_port = grpc_port = None
        if name == "predictor":
            # Payloads are logged where KServe's logger sits in the chart: the predictor.
            env |= {
                "CASTML_LOGGER_URL": state.parts["collector"].url + "/",
                "CASTML_LOGGER_TOKEN": tokens["collector_token"],
            }
            grpc_port = _port(old, "predictor_grpc")
        else:
            predictor_port = int(state.parts["predictor"].extra["port"])
        port = _port(old, name)
        server = start_server(
            name,
            env,
            logs,
            project=project,
            grpc=name == "predictor",
            predictor_port=predictor_port,
            port=port,
            grpc_port=grpc_port,
            detach=True,
        )
        probe = "/v2/health/ready" if name == "predictor" else "/v2/health/live"
        part = Part(name, server.process.pid, server.url, probe, str(server.log), "serving")
        part.extra["port"] = str(port)
        if grpc_port:
            part.extra["grpc"] = f"127.0.0.1:{grpc_port}"
    part.extra["port_key"] = name
    return part


def reconciled_model(part: str, project: str) -> str:
    """The registered model a reconciler part follows: the project's, or its knowledge base."""
    return kb_model_name(project) if part == "rollout-kb" else project


def register_webhook(uri: str, project: str, receiver_url: str, secret: str) -> str:
    """The reconciler's MLflow webhook (alias moves), replacing one of the same name."""
    from castml import registry

    client = registry.client(uri)
    name = f"castml-rollout-{project}"
    page_token = None
    while True:
        page = client.list_webhooks(max_results=100, page_token=page_token)
        for hook in page:
            if hook.name == name:
                client.delete_webhook(hook.webhook_id)
        page_token = page.token
        if not page_token:
            break
    hook = client.create_webhook(
        name=name,
        url=f"{receiver_url}/webhooks/mlflow",
        events=WEBHOOK_EVENTS,  # type: ignore[arg-type]
        secret=secret,
    )
    return str(hook.webhook_id)


def _ensure_mlflow(settings: PlatformSettings) -> bool:
    """MLflow answers; True when this call started it (so `castml down` stops it)."""
    from castml.cli.mlflow_cmd import ensure_up
    from castml.mlflow_server import is_healthy

    was_up = bool(settings.mlflow_uri) or is_healthy(settings.tracking_uri)
    ensure_up(settings)
    return not was_up


def bring_up(settings: PlatformSettings, project: str) -> PlatformState:
    """Start what is not running; returns where every part is."""
    from castml import registry

    place = PlatformDir(settings.home.resolve() / "platform")
    old = place.load()
    started_mlflow = _ensure_mlflow(settings)
    uri = settings.tracking_uri
    if old is not None and old.project != project:
        raise CastmlError(
            f"the platform under {place.root} serves '{old.project}'; `castml down` first"
        )
    client = registry.client(uri, settings.mlflow_timeout_s)
    if registry.alias_version(client, project, registry.CHAMPION) is None:
        raise NoChampionError(
            f"'{project}' has no @champion in MLflow at {uri}: run `castml demo` or "
            f"`castml pipeline run --project {project}` first (MLflow is up)"
        )
    state = PlatformState(
        project,
        uri,
        started_mlflow or bool(old and old.mlflow_started),
        webhook_id=old.webhook_id if old else None,
        kb_webhook_id=old.kb_webhook_id if old else None,
    )
    tokens = place.secrets()
    restarted: set[str] = set()  # a webhook points at its reconciler: re-register on a restart
    for name in ORDER:
        if name in OPTIONAL and not _has_champion(client, kb_model_name(project)):
            continue  # no knowledge base registered: `castml kb build` makes one
        known = old.parts.get(name) if old else None
        # A part whose upstream was restarted keeps working (they reconnect by URL).
        if known is not None and known.healthy():
            state.parts[name] = known
            continue
        if known is not None:
            stop_pid(known.pid, known.marker)  # alive but not answering
        with console.status(f"starting {name} ..."):
            state.parts[name] = _start_part(name, state, old, settings, tokens, place.logs)
        restarted.add(name)
        place.save(state)
    for part, field_name in (("rollout", "webhook_id"), ("rollout-kb", "kb_webhook_id")):
        if part in state.parts and (part in restarted or getattr(state, field_name) is None):
            hook = register_webhook(
                uri,
                reconciled_model(part, project),
                state.parts[part].url,
                tokens["webhook_secret"],
            )
            setattr(state, field_name, hook)
    place.save(state)
    return state


def _has_champion(client: Any, name: str) -> bool:
    from castml import registry

    return registry.alias_version(client, name, registry.CHAMPION) is not None


def bring_down(settings: PlatformSettings) -> list[str]:
    """Stop every recorded part (and MLflow, when `castml up` started it); what stopped."""
    from castml import registry
    from castml.mlflow_server import ServerLayout, stop_recorded

    place = PlatformDir(settings.home.resolve() / "platform")
    state = place.load()
    stopped: list[str] = []
    if state is None:
        return stopped
    for hook in (state.webhook_id, state.kb_webhook_id):
        if hook:
            # MLflow already gone, or the hook deleted by hand: nothing left to undo.
            with contextlib.suppress(Exception):
                registry.client(state.tracking_uri, 5.0).delete_webhook(hook)
    for name in reversed(ORDER):
        part = state.parts.get(name)
        if part is not None and stop_pid(part.pid, part.marker):
            stopped.append(name)
    if state.mlflow_started and stop_recorded(ServerLayout(settings.mlflow_dir)):
        stopped.append("mlflow")
    place.forget()
    return stopped


def show(state: PlatformState | None, settings: PlatformSettings) -> bool:
    """One line per part (never wrapped: the URLs are for copying); True when all answer."""
    place = PlatformDir(settings.home.resolve() / "platform")
    if state is None:
        console.print(f"the platform is down (no state under {place.root})")
        return False
    from castml.mlflow_server import is_healthy

    project = state.project
    say = functools.partial(console.print, soft_wrap=True, highlight=False)
    say(f"[bold]castml platform[/] (project {project}, home {settings.home.resolve()})")
    mlflow_ok = is_healthy(state.tracking_uri)
    origin = "started by castml up" if state.mlflow_started else "external or already running"
    say(f"  {'mlflow':<12} {_word(mlflow_ok)}  {state.tracking_uri}/#/models/{project}  ({origin})")
    paths = {
        "predictor": f"/v2/models/{project}/infer",
        "transformer": f"/v1/models/{project}:predict",
        "explainer": f"/v1/models/{project}:explain",
        "collector": "/ (events), /v1/feedback, /v1/retrain",
        "knowledge": f"/v1/models/{kb_model_name(project)}:predict",
        "rollout": "/webhooks/mlflow, /reconcile",
        "rollout-kb": f"/webhooks/mlflow, /reconcile  ({kb_model_name(project)})",
        "ui": "/  (predict, analysis, assistant, history, models)",
    }
    healthy = mlflow_ok
    for name in ORDER:
        part = state.parts.get(name)
        if part is None and name in OPTIONAL:
            say(f"  {name:<12} -     (no {kb_model_name(project)} @champion: `castml kb build`)")
            continue
        if part is None:
            say(f"  {name:<12} {_word(False)}  (not started)")
            healthy = False
            continue
        ok = part.healthy()
        healthy = healthy and ok
        grpc = f", gRPC {part.extra['grpc']}" if "grpc" in part.extra else ""
        say(f"  {name:<12} {_word(ok)}  {part.url}{paths[name]}  (pid {part.pid}{grpc})")
    say(f"logs: {place.logs}   tokens: {place.secrets_file}")
    if "collector" in state.parts:
        say(
            "drift job -> retrain endpoint: "
            f"CASTML_DRIFT_RETRAIN_URL={state.parts['collector'].url}/v1/retrain "
            "CASTML_RETRAIN_TOKEN=<retrain_token in the tokens file> castml drift run"
        )
    if state.webhook_id:
        say(
            f"MLflow webhook {state.webhook_id} -> the reconciler: a move of @champion in the "
            "MLflow UI is served within a second (periodic reconcile: the backstop)"
        )
    return healthy


def _word(ok: bool) -> str:
    return "[green]up  [/]" if ok else "[red]DOWN[/]"


@app.command("up")
def up(
    project: Annotated[str, typer.Option("--project", "-p", help="Project to serve.")] = "diecast",
    status: Annotated[
        bool, typer.Option("--status", help="Only report where each part is; start nothing.")
    ] = False,
) -> None:
    """Start the embedded platform in the background (MLflow, serving, collector, reconciler)."""
    from castml.settings import PlatformSettings

    settings = PlatformSettings()
    if status:
        place = PlatformDir(settings.home.resolve() / "platform")
        raise typer.Exit(0 if show(place.load(), settings) else 1)
    state = bring_up(settings, project)
    show(state, settings)


@app.command("down")
def down() -> None:
    """Stop everything `castml up` started (MLflow too, when it started it)."""
    from castml.settings import PlatformSettings

    stopped = bring_down(PlatformSettings())
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "the platform was not running")
