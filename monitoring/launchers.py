"""Launchers that run a blocking pipeline call in the background (the kfp.local case).

`run` is injected by the CLI, the one composition root (`castml.cli.pipeline_launchers`
wraps `pipelines.runner.run_local`, which monitoring never imports: DESIGN.md §3); it
gets (project, reason, data_path) and returns the registered version. `data_path` is
the policy's choice of training data ("" = the spec's source). When it ends, the policy
hears of it (lifting dedupe) and the new version is tagged with the decision's evidence.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from castml.protocol.mlflow_names import TAG_RETRAIN_EVIDENCE, TAG_RETRAIN_RUN
from monitoring.policy import RetrainPolicy


class BackgroundLauncher:
    def __init__(
        self,
        run: Callable[[str, str, str], int | str],
        tag_version: Callable[[str, str, dict[str, str]], None] | None = None,
    ) -> None:
        self.run = run
        self.tag_version = tag_version
        self.policy: RetrainPolicy | None = None  # set by attach(); the policy needs us first
        self.threads: dict[str, threading.Thread] = {}

    def attach(self, policy: RetrainPolicy) -> None:
        self.policy = policy

    def launch(
        self, project: str, reason: str, evidence_uri: str | None, data_path: str = ""
    ) -> str:
        run_id = f"local-{uuid.uuid4().hex[:12]}"
        thread = threading.Thread(
            target=self._work,
            args=(project, reason, evidence_uri, data_path, run_id),
            name=run_id,
            daemon=False,
        )
        self.threads[run_id] = thread
        thread.start()
        return run_id

    def _work(
        self, project: str, reason: str, evidence_uri: str | None, data_path: str, run_id: str
    ) -> None:
        try:
            version = self.run(project, reason, data_path)
            detail = f"succeeded: registered {project} version {version}"
            if self.tag_version is not None:
                tags = {TAG_RETRAIN_RUN: run_id, TAG_RETRAIN_EVIDENCE: evidence_uri or ""}
                self.tag_version(project, str(version), tags)
        except Exception as exc:
            detail = f"failed: {type(exc).__name__}: {exc}"
        if self.policy is not None:
            self.policy.finished(project, run_id, detail)

    def wait(self, timeout_s: float | None = None) -> None:
        for thread in list(self.threads.values()):
            thread.join(timeout_s)
