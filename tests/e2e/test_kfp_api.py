"""`castml pipeline submit|schedule` against a real KFP API.

Set CASTML_KFP_HOST (e.g. http://localhost:8888 after `kubectl port-forward svc/ml-pipeline
-n kubeflow 8888`) and CASTML_MLFLOW_URI as the cluster sees it. Skipped without a reachable
KFP API; never faked.
"""

from __future__ import annotations

import os

import httpx
import pytest

from pipelines.runner import TRAINING_PACKAGE, schedule, submit

pytestmark = pytest.mark.e2e
HOST = os.environ.get("CASTML_KFP_HOST", "")
MLFLOW = os.environ.get("CASTML_MLFLOW_URI", "http://castml-mlflow:5000")


def _reachable(host: str) -> bool:
    if not host:
        return False
    try:
        return httpx.get(f"{host}/apis/v2beta1/healthz", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


if not _reachable(HOST):
    pytest.skip("no KFP API reachable (set CASTML_KFP_HOST)", allow_module_level=True)


def test_submit_starts_a_run() -> None:
    assert submit(
        HOST, "diecast", MLFLOW, reason="manual", profile="fast", package=TRAINING_PACKAGE
    )


def test_schedule_registers_the_monthly_recurring_run() -> None:
    assert schedule(HOST, "diecast", MLFLOW, "0 0 2 1 * *", package=TRAINING_PACKAGE)
