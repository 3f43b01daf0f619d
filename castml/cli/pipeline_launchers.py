"""The launchers monitoring's retrain policy gets: where monitoring meets pipelines.

Monitoring never imports pipelines (DESIGN.md §3); the CLI, the one composition root,
builds a launcher here and injects it. Both start the checked-in compiled pipeline
(`pipelines.runner.TRAINING_PACKAGE`), passed as a path, never compiled at run time:

- `KfpClusterLauncher`: one run on a KFP API (the chart's collector, CASTML_KFP_HOST);
- `local_launcher`: kfp.local in a child process, watched by a background thread.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from castml.errors import CastmlError
from monitoring.launchers import BackgroundLauncher
from pipelines.runner import TRAINING_PACKAGE


class RetrainRunError(CastmlError):
    """A local retrain run failed; the message carries the child's error type and text."""


class KfpClusterLauncher:
    def __init__(self, host: str, mlflow_uri: str, package: Path = TRAINING_PACKAGE) -> None:
        self.host, self.mlflow_uri, self.package = host, mlflow_uri, package

    def launch(
        self, project: str, reason: str, evidence_uri: str | None, data_path: str = ""
    ) -> str:
        from pipelines.runner import submit

        # data_path is a runs:/ URI (monitoring.training_set stores the set in MLflow),
        # which the pipeline's pods read through the MLflow server like everything else.
        return submit(
            self.host,
            project,
            self.mlflow_uri,
            reason=reason,
            data_path=data_path,
            package=self.package,
        )


def run_in_child(
    project: str,
    tracking_uri: str,
    pipeline_root: Path,
    package: Path,
    reason: str,
    profile: str,
    data_path: str,
) -> int:
    """The child process's work: one kfp.local run; returns the registered version."""
    from pipelines.runner import run_local

    try:
        return run_local(
            project,
            tracking_uri,
            pipeline_root,
            package=package,
            reason=reason,
            profile=profile,
            data_path=data_path,
        ).version
    except Exception as exc:
        # The error travels back pickled; one with its own __init__ arguments would not
        # unpickle, so only its type and text cross.
        raise RetrainRunError(f"{type(exc).__name__}: {exc}") from None


def local_launcher(
    tracking_uri: str,
    pipeline_root: Path,
    profile: str = "",
    package: Path = TRAINING_PACKAGE,
) -> BackgroundLauncher:
    """kfp.local runs in a spawned child: kfp.local redirects stdout and swaps the root
    logger's handlers for the run, which must not touch a server's (or a demo's) output."""

    def run(project: str, reason: str, data_path: str) -> int:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as child:
            job = child.submit(
                run_in_child,
                project,
                tracking_uri,
                pipeline_root,
                package,
                reason,
                profile,
                data_path,
            )
            return job.result()

    def tag(project: str, version: str, tags: dict[str, str]) -> None:
        from castml import registry

        client = registry.client(tracking_uri)
        for key, value in tags.items():
            client.set_model_version_tag(project, version, key, value)

    return BackgroundLauncher(run, tag)
