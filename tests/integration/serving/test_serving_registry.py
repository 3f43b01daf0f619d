"""Against a real MLflow registry: version pinning from @champion, the cached download with
its logged background, and the rollout reconciler (signed webhooks, deployed.* tags)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.webhooks.delivery import _generate_hmac_signature

from castml import registry
from serving.rollout import EmbeddedTarget, Reconciler, event_body, webhook_app
from serving.settings import rollout_settings
from serving.version_store import BACKGROUND_FILE, COMPLETE_MARKER
from tests.integration.serving.conftest import Server, start_server
from tests.unit.serving.support import valid_record

pytestmark = pytest.mark.integration
SECRET = "s3cret"


@pytest.fixture
def registry_predictor(
    registered_on_each_backend: Any, tmp_path: Path
) -> Iterator[tuple[Server, Path]]:
    env = {
        "CASTML_MLFLOW_URI": registered_on_each_backend.uri,
        "CASTML_HOME": str(tmp_path),
        "CASTML_MODEL_VERSION": "champion",
    }
    server = start_server("predictor", env, tmp_path / "logs")
    try:
        yield server, tmp_path
    finally:
        server.stop()


def champion(uri: str) -> str:
    return str(registry.resolve_version(registry.client(uri), "diecast", "champion").version)


def test_pins_champion_to_a_number_and_caches_it(
    registry_predictor: tuple[Server, Path], registered_on_each_backend: Any
) -> None:
    server, home = registry_predictor
    pinned = champion(registered_on_each_backend.uri)
    meta = httpx.get(f"{server.url}/v2/models/diecast").json()
    assert meta["versions"] == [pinned]
    cached = home / "serving-cache" / "diecast" / pinned
    assert (cached / COMPLETE_MARKER).is_file() and (cached / BACKGROUND_FILE).is_file()
    other = next(str(v) for v in registered_on_each_backend.versions if str(v) != pinned)
    loaded = httpx.post(
        f"{server.url}/v2/repository/models/diecast/load",
        json={"parameters": {"version": other}},
        timeout=120,
    )
    assert loaded.status_code == 200 and loaded.json()["version"] == other
    missing = httpx.post(
        f"{server.url}/v2/repository/models/diecast/load",
        json={"parameters": {"version": "999"}},
        timeout=60,
    )
    assert missing.status_code == 404


def signed(body: bytes, secret: str = SECRET, age_s: int = 0) -> dict[str, str]:
    delivery, timestamp = str(uuid.uuid4()), str(int(time.time()) - age_s)
    return {
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": timestamp,
        # MLflow's own signing function: proves we verify the format MLflow sends
        "X-MLflow-Signature": _generate_hmac_signature(secret, delivery, timestamp, body.decode()),
        "Content-Type": "application/json",
    }


def test_webhook_moves_serving_to_the_new_champion(
    registry_predictor: tuple[Server, Path], registered_on_each_backend: Any
) -> None:
    server, home = registry_predictor
    uri = registered_on_each_backend.uri
    client = registry.client(uri)
    before = champion(uri)
    after = next(str(v) for v in registered_on_each_backend.versions if str(v) != before)
    settings = rollout_settings(
        mlflow_uri=uri,
        home=home,
        project="diecast",
        predictor_url=server.url,
        webhook_secret=SECRET,
    )
    reconciler = Reconciler(settings, EmbeddedTarget(server.url, "diecast"))
    app = webhook_app(reconciler)

    async def deliver(body: bytes, headers: dict[str, str]) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rollout") as http:
            return await http.post("/webhooks/mlflow", content=body, headers=headers, timeout=120)

    try:
        client.set_registered_model_alias("diecast", "champion", after)
        body = event_body("diecast", "champion", after)
        assert asyncio.run(deliver(body, signed(body, secret="wrong"))).status_code == 401
        assert asyncio.run(deliver(body, signed(body, age_s=3600))).status_code == 401
        assert asyncio.run(deliver(body, {"Content-Type": "application/json"})).status_code == 401
        other = event_body("diecast", "challenger", after)
        assert "ignored" in asyncio.run(deliver(other, signed(other))).json()
        assert httpx.get(f"{server.url}/v2/models/diecast").json()["versions"] == [before]

        response = asyncio.run(deliver(body, signed(body)))
        assert response.status_code == 200, response.text
        assert response.json()["action"] == "deployed" and response.json()["champion"] == after
        assert httpx.get(f"{server.url}/v2/models/diecast").json()["versions"] == [after]
        tags = client.get_model_version("diecast", after).tags
        assert tags["deployed.status"] == "serving" and tags["deployed.previous_version"] == before
        assert tags["deployed.target"] == f"embedded:{server.url}"
        assert asyncio.run(reconciler.reconcile("periodic")).action == "unchanged"
    finally:
        client.set_registered_model_alias("diecast", "champion", before)
    assert asyncio.run(reconciler.reconcile("periodic")).action == "deployed"  # and back
    assert httpx.get(f"{server.url}/v2/models/diecast").json()["versions"] == [before]


def test_explainer_uses_the_background_logged_with_the_version(
    registry_predictor: tuple[Server, Path], registered_on_each_backend: Any
) -> None:
    from castml.spec import load_spec

    server, home = registry_predictor
    env = {"CASTML_MLFLOW_URI": registered_on_each_backend.uri, "CASTML_HOME": str(home)}
    explainer = start_server("explainer", env, home / "logs", predictor=server)
    try:
        response = httpx.post(
            f"{explainer.url}/v1/models/diecast:explain",
            json={
                "features": valid_record(load_spec("diecast")),
                "chart": False,
                "permutations": 2,
            },
            timeout=120,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["local_accuracy_error"] < 1e-6 and body["background_rows"] > 0
        assert body["model_version"] == f"diecast/{champion(registered_on_each_backend.uri)}"
    finally:
        explainer.stop()


@pytest.mark.e2e
def test_cluster_mode_patches_the_inference_service() -> None:
    kubernetes = pytest.importorskip("kubernetes")
    try:
        kubernetes.config.load_kube_config()
        kubernetes.client.VersionApi().get_code()
    except Exception:  # no kubeconfig, or no API server behind it
        pytest.skip("no Kubernetes cluster reachable")
    from serving.rollout import ClusterTarget

    target = ClusterTarget("default", "diecast")
    assert asyncio.run(target.current()) is not None
