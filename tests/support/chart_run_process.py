"""One container as a local process: started in its sandbox (chart_run_launch), probed
the way the kubelet probes it, stopped with its whole process group."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict
from pathlib import Path

from tests.support.chart_run_spec import Probe, ProcessSpec

LAUNCHER = Path(__file__).with_name("chart_run_launch.py")
REPO_ROOT = Path(__file__).resolve().parents[2]
POLL_S = 0.25


def sandbox_ready() -> str | None:
    """None when mount namespaces, overlay and setpriv work here, else why not."""
    if os.geteuid() != 0:
        return "the sandbox needs root (unshare --mount, mount, setpriv)"
    probe = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount -t tmpfs x /mnt && mount -o remount,bind,ro / && command -v setpriv",
    ]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError as exc:
        return f"the sandbox needs util-linux: {exc}"
    return (
        None
        if done.returncode == 0
        else f"mount namespaces do not work here: {done.stderr.strip()}"
    )


class Running:
    """A started container process."""

    def __init__(self, spec: ProcessSpec, run_dir: Path) -> None:
        self.spec = spec
        slug = spec.ref.replace("/", "_")
        self.log = run_dir / "logs" / f"{slug}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        layer = run_dir / "layers" / slug
        layer.mkdir(parents=True, exist_ok=True)
        spec_file = run_dir / "layers" / f"{slug}.json"
        # The image stand-ins (the repository with its venv, the interpreter's base) stay
        # visible even under a volume mounted above them (e.g. a clone under /tmp).
        image = sorted({str(REPO_ROOT), os.path.realpath(sys.base_prefix)})
        spec_file.write_text(json.dumps({**asdict(spec), "layer": str(layer), "image": image}))
        argv = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            sys.executable,
            "-I",
            str(LAUNCHER),
            str(spec_file),
        ]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def exited(self) -> int | None:
        return self.process.poll()

    def wait(self, timeout_s: float) -> int | None:
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                if self.wait(grace) is not None:
                    break
        self.process.poll()


def probe_once(probe: Probe, running: Running) -> str | None:
    """None when the probe succeeds, else what it saw."""
    try:
        if probe.handler == "httpGet":
            url = f"http://127.0.0.1:{probe.port}{probe.path}"
            with urllib.request.urlopen(url, timeout=max(probe.timeout_s, 2.0)) as reply:
                return None if 200 <= reply.status < 400 else f"HTTP {reply.status} from {url}"
        if probe.handler == "tcpSocket":
            with socket.create_connection(("127.0.0.1", probe.port), timeout=probe.timeout_s):
                return None
        if probe.handler == "exec":
            return _exec_probe(probe, running)
        return f"{probe.handler} probes are not supported by the harness"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} from {probe.path}"
    except (OSError, urllib.error.URLError) as exc:
        where = probe.path if probe.handler == "httpGet" else ""
        return f"{probe.handler} port {probe.port}{where}: {exc}"


def _exec_probe(probe: Probe, running: Running) -> str | None:
    """The command in the container's own mount namespace and root, as its user."""
    s = running.spec
    argv = [
        "nsenter",
        f"--target={running.process.pid}",
        "--mount",
        "--root",
        "--wd",
        "setpriv",
        f"--reuid={s.uid}",
        f"--regid={s.gid}",
        "--clear-groups",
        "--",
        *probe.command,
    ]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=s.env,
        timeout=max(probe.timeout_s, 5.0),
        check=False,
    )
    return None if done.returncode == 0 else f"exec {probe.command}: exit {done.returncode}"


def await_probe(probe: Probe, running: Running, budget_s: float) -> str | None:
    """Poll until the probe passes, the process exits, or its budget is spent."""
    deadline, last = time.monotonic() + budget_s, "not probed"
    while True:
        code = running.exited()
        if code is not None:
            return f"exited with {code} before its {probe.kind} probe passed ({last})"
        seen = probe_once(probe, running)
        if seen is None:
            return None
        last = seen
        if time.monotonic() > deadline:
            return f"{probe.kind} probe still failing after {budget_s:.0f}s: {last}"
        time.sleep(POLL_S)


def await_started(running: Running, cap_s: float) -> str | None:
    """A long-running container: startup, then readiness and liveness must pass. Without
    probes: it must still run and accept TCP on each declared port."""
    spec = running.spec
    checks = list(spec.probes) or [
        Probe("readiness", "tcpSocket", local, budget_s=cap_s) for local in spec.ports.values()
    ]
    if not checks:  # nothing to probe: running is all the kubelet would know
        return None if running.exited() is None else f"exited with {running.exited()}"
    budget = min(
        max((p.budget_s for p in checks if p.kind == "startup"), default=0.0) or cap_s, cap_s
    )
    for probe in sorted(checks, key=lambda p: p.kind != "startup"):
        problem = await_probe(
            probe,
            running,
            budget if probe.kind == "startup" else min(probe.budget_s + budget, cap_s),
        )
        if problem:
            return problem
    return None
