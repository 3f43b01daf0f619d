"""A corrupt model version never crashes serving (issue 10 §2), against a real MLflow registry.

Registered model `diecastx` (the diecast spec under another name, so the session's `diecast`
versions stay as they are) gets three versions built from a real `diecast` version:
`intact` (a byte copy, with the digests recorded at its registration), `mismatched` (its
`gbm.txt` cut in half, with the intact copy's digests: the digest check refuses it) and
`undigested` (cut in half, registered without digests as before this change: LightGBM
aborts loading it, so only the child trial load stands between it and the predictor).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from castml import registry
from castml.cli.local_processes import SOURCE_ROOT, free_port, start_server
from castml.protocol.mlflow_names import BACKGROUND_ARTIFACT, TAG_DIGESTS
from castml.spec import PROJECTS_DIR, load_spec
from serving.rollout import EmbeddedTarget, Reconciler
from serving.settings import rollout_settings
from serving.version_store import smoke_rows
from tests.integration.serving.conftest import Server

pytestmark = pytest.mark.integration
PROJECT = "diecastx"


@dataclass(frozen=True)
class Corrupt:
    uri: str
    spec_path: Path
    intact: str
    mismatched: str
    undigested: str


def _register(uri: str, folder: Path, background: Path, tags: dict[str, str]) -> str:
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(f"castml/{PROJECT}")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(folder), "model")
        mlflow.log_artifact(str(background), str(Path(BACKGROUND_ARTIFACT).parent))
    created = registry.client(uri).create_model_version(
        PROJECT, f"runs:/{run.info.run_id}/model", run.info.run_id, tags=tags
    )
    return str(created.version)


@pytest.fixture(scope="module")
def corrupt(registered_diecast: Any, tmp_path_factory: pytest.TempPathFactory) -> Corrupt:
    import mlflow.artifacts

    uri = registered_diecast.uri
    client = registry.client(uri)
    good = client.get_model_version("diecast", str(registered_diecast.versions[0]))
    assert TAG_DIGESTS in good.tags  # registration records them
    work = tmp_path_factory.mktemp("corrupt")
    spec_path = work / f"{PROJECT}.yaml"
    text = (PROJECTS_DIR / "diecast.yaml").read_text()
    spec_path.write_text(text.replace("name: diecast", f"name: {PROJECT}", 1))
    source = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri("diecast", good.version),
            dst_path=str(work / "intact"),
            tracking_uri=uri,
        )
    )
    background = Path(
        mlflow.artifacts.download_artifacts(
            run_id=good.run_id,
            artifact_path=BACKGROUND_ARTIFACT,
            dst_path=str(work / "bg"),
            tracking_uri=uri,
        )
    )
    half = work / "half"
    shutil.copytree(source, half)
    gbm = half / "artifacts" / "model" / "gbm.txt"
    data = gbm.read_bytes()
    gbm.write_bytes(data[: len(data) // 2])
    client.create_registered_model(PROJECT)
    digests = {TAG_DIGESTS: good.tags[TAG_DIGESTS]}
    intact = _register(uri, source, background, digests)
    mismatched = _register(uri, half, background, digests)
    undigested = _register(uri, half, background, {})
    client.set_registered_model_alias(PROJECT, "champion", intact)
    return Corrupt(uri, spec_path, intact, mismatched, undigested)


@pytest.fixture(scope="module")
def predictor(
    corrupt: Corrupt, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Path]]:
    home = tmp_path_factory.mktemp("corrupt-home")
    env = {"CASTML_MLFLOW_URI": corrupt.uri, "CASTML_HOME": str(home)}
    server = start_server(
        "predictor",
        {**env, "CASTML_MODEL_VERSION": "champion"},
        home / "logs",
        project=str(corrupt.spec_path),
    )
    try:
        yield server, home
    finally:
        server.stop()


def load(server: Server, version: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v2/repository/models/{PROJECT}/load",
        json={"parameters": {"version": version}},
        timeout=120,
    )


def served_version(server: Server) -> str:
    rows = smoke_rows(load_spec("diecast")).ravel().tolist()
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 30], "data": rows}]}
    response = httpx.post(f"{server.url}/v2/models/{PROJECT}/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["model_version"])


def test_corrupt_versions_are_refused_and_the_old_one_keeps_serving(
    corrupt: Corrupt, predictor: tuple[Server, Path]
) -> None:
    server, home = predictor
    assert served_version(server) == corrupt.intact
    for version, reason in (
        (corrupt.undigested, "crashed the trial process"),
        (corrupt.mismatched, "model/gbm.txt do(es) not match the digests"),
    ):
        refused = load(server, version)
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert reason in error and str(home) not in error and "/tmp" not in error
        assert server.process.poll() is None  # before the fix: the process died here
        assert served_version(server) == corrupt.intact
        assert (home / "serving-cache" / PROJECT / "refused" / f"{version}.json").is_file()
        again = load(server, version)  # marked: answered at once, no second trial
        assert again.status_code == 422 and "refused earlier" in again.json()["error"]
    cached = home / "serving-cache" / PROJECT / corrupt.intact / "digests.json"
    assert '"recorded": true' in cached.read_text()


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=SOURCE_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_rollout_once_reports_the_refusal_in_one_line_and_serving_stays_up(
    corrupt: Corrupt, predictor: tuple[Server, Path]
) -> None:
    server, home = predictor
    client = registry.client(corrupt.uri)
    env = {
        "CASTML_MLFLOW_URI": corrupt.uri,
        "CASTML_HOME": str(home),
        "CASTML_PROJECT": PROJECT,
        "CASTML_PREDICTOR_URL": server.url,
    }
    try:
        client.set_registered_model_alias(PROJECT, "champion", corrupt.undigested)
        once = _cli(env, "castml.cli.main", "rollout", "once")
        lines = once.stdout.strip().splitlines()
        assert once.returncode == 1, once.stdout + once.stderr
        assert len(lines) == 1 and lines[0].startswith("refused: version"), once.stdout
        assert "Traceback" not in once.stderr
        assert f"version {corrupt.intact} keeps serving" in lines[0]
        assert served_version(server) == corrupt.intact
        tags = client.get_model_version(PROJECT, corrupt.undigested).tags
        assert tags["deployed.status"] == "refused" and tags["deployed.error"]

        # The periodic backstop sees the refusal and does not ask again, round after round.
        settings = rollout_settings(
            mlflow_uri=corrupt.uri, home=home, project=PROJECT, predictor_url=server.url
        )
        reconciler = Reconciler(settings, EmbeddedTarget(server.url, PROJECT))
        for _ in range(2):
            outcome = asyncio.run(reconciler.reconcile("periodic"))
            assert outcome.action == "refused" and outcome.error
        after = client.get_model_version(PROJECT, corrupt.undigested).tags
        assert after["deployed.at"] == tags["deployed.at"]  # not applied nor tagged again
    finally:
        client.set_registered_model_alias(PROJECT, "champion", corrupt.intact)
    assert served_version(server) == corrupt.intact


def test_a_predictor_started_on_a_corrupt_champion_exits_with_one_line(
    corrupt: Corrupt, tmp_path: Path
) -> None:
    client = registry.client(corrupt.uri)
    env = {"CASTML_MLFLOW_URI": corrupt.uri, "CASTML_HOME": str(tmp_path)}
    try:
        client.set_registered_model_alias(PROJECT, "champion", corrupt.undigested)
        started = time.monotonic()
        run = _cli(
            env,
            "serving",
            "predictor",
            "--model_name",
            str(corrupt.spec_path),
            "--http_port",
            str(free_port()),
        )
    finally:
        client.set_registered_model_alias(PROJECT, "champion", corrupt.intact)
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 65, run.stderr
    assert "Traceback" not in run.stderr and len(errors) == 1, run.stderr
    assert "crashed the trial process" in errors[0] and "castml model rollback" in errors[0]
    assert time.monotonic() - started < 180
