"""The rollout reconciler: keeps serving on the version behind @champion.

Triggers: MLflow registry webhooks (MLflow >= 3.3, `model_version_alias` events, HMAC
signed), and a periodic reconcile as the backstop for a lost delivery. Each reconcile
compares @champion with what is served and, when they differ, moves serving:
embedded mode through the predictor's repository load API, cluster mode by a JSON
merge patch of the InferenceService (`castml.isvc`). The outcome is written back to
the model version as `deployed.*` tags.

MLflow signs `f"{delivery_id}.{timestamp}.{body}"` with HMAC-SHA256 and sends
`X-MLflow-Signature: v1,<base64>`, `X-MLflow-Timestamp` (unix seconds) and
`X-MLflow-Delivery-Id` (mlflow/webhooks/delivery.py).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import orjson

from castml import isvc
from castml.protocol.mlflow_names import CHAMPION
from castml.web.asgi import App, Request, Response, json_response
from castml.web.errors import UnavailableError
from serving.errors import (
    BadRequestError,
    ServingError,
    UpstreamError,
    VersionRefusedError,
    WebhookRejectedError,
)
from serving.registry_store import RegistryStore, VersionInfo
from serving.settings import RolloutSettings

log = logging.getLogger("serving.rollout")

SIGNATURE_HEADER = "x-mlflow-signature"
TIMESTAMP_HEADER = "x-mlflow-timestamp"
DELIVERY_HEADER = "x-mlflow-delivery-id"
TAG_PREFIX = "deployed."


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(
        secret.encode(), f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256
    ).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, max_age_s: float, now: float) -> None:
    signature = headers.get(SIGNATURE_HEADER, "")
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    delivery = headers.get(DELIVERY_HEADER, "")
    if not (signature and timestamp and delivery):
        raise WebhookRejectedError("missing X-MLflow-Signature, -Timestamp or -Delivery-Id header")
    if not (timestamp.isascii() and timestamp.isdigit()) or abs(now - int(timestamp)) > max_age_s:
        raise WebhookRejectedError("the webhook timestamp is missing or too old")
    if not hmac.compare_digest(sign(secret, delivery, timestamp, body), signature):
        raise WebhookRejectedError("the webhook signature does not match")


class Target(Protocol):
    description: str

    async def current(self) -> str | None: ...

    async def apply(self, version: str) -> None: ...


class EmbeddedTarget:
    """A predictor on this machine: read its metadata, switch it with the load API."""

    def __init__(self, predictor_url: str, project: str, timeout_s: float = 120.0) -> None:
        self.url = predictor_url.rstrip("/")
        self.project = project
        self.timeout_s = timeout_s
        self.description = f"embedded:{self.url}"

    async def current(self) -> str | None:
        async with httpx.AsyncClient(timeout=10.0) as client:
            try:
                response = await client.get(f"{self.url}/v2/models/{self.project}")
            except httpx.HTTPError as exc:
                raise UpstreamError(f"predictor at {self.url} unreachable: {exc}") from exc
        if response.status_code != 200:
            return None
        versions = response.json().get("versions") or [None]
        return None if versions[0] is None else str(versions[0])

    async def apply(self, version: str) -> None:
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            response = await client.post(
                f"{self.url}/v2/repository/models/{self.project}/load",
                json={"parameters": {"version": version}},
            )
        if response.status_code == 200:
            return
        try:
            reason = str(response.json().get("error") or response.text)
        except ValueError:
            reason = response.text
        if response.status_code == 422:  # a verdict on the version: an outcome, not a retry
            raise VersionRefusedError(reason)
        if response.status_code == 503:
            raise UnavailableError(f"the predictor cannot load version {version} now: {reason}")
        raise UpstreamError(
            f"the predictor answered {response.status_code} to loading version {version}: {reason}"
        )


class ClusterTarget:
    """An InferenceService, pinned by a JSON merge patch (never a list: see castml.isvc)."""

    def __init__(self, namespace: str, name: str) -> None:
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        self.api = client.CustomObjectsApi()
        self.namespace, self.name = namespace, name
        self.description = f"cluster:{namespace}/{name}"

    def _get(self) -> dict[str, Any]:
        found: dict[str, Any] = self.api.get_namespaced_custom_object(
            isvc.API_GROUP, isvc.API_VERSION.split("/")[1], self.namespace, isvc.PLURAL, self.name
        )
        return found

    async def current(self) -> str | None:
        pinned = isvc.pinned_version(await asyncio.to_thread(self._get))
        return None if pinned is None else str(pinned)

    async def apply(self, version: str) -> None:
        def patch() -> None:
            live = self._get()
            if isvc.needs_patch(live, int(version)):
                self.api.patch_namespaced_custom_object(
                    isvc.API_GROUP,
                    isvc.API_VERSION.split("/")[1],
                    self.namespace,
                    isvc.PLURAL,
                    self.name,
                    isvc.pinned_version_patch_for(live, int(version)),
                )

        await asyncio.to_thread(patch)


@dataclass
class Outcome:
    champion: str | None
    served_before: str | None
    # unchanged | deployed | refused (a verdict on the version) | failed | unavailable
    # (MLflow or the predictor cannot be reached now) | no-champion
    action: str
    trigger: str
    error: str = ""

    def line(self) -> str:
        """One line for people: what happened and what serves now."""
        served = f"version {self.served_before}" if self.served_before else "nothing"
        if self.action == "deployed":
            return f"deployed: version {self.champion} serves now (was {served})"
        if self.action == "unchanged":
            return f"unchanged: @champion is version {self.champion}, which serves"
        if self.action == "no-champion":
            return f"no-champion: no version has @{CHAMPION}; {served} keeps serving"
        return f"{self.action}: {self.error}; {served} keeps serving"


STATUS_TAG = TAG_PREFIX + "status"
ERROR_TAG = TAG_PREFIX + "error"
REFUSED = "refused"


class Reconciler:
    def __init__(self, settings: RolloutSettings, target: Target) -> None:
        self.settings = settings
        self.target = target
        self.registry = RegistryStore(settings.tracking_uri, settings.project, settings.home)
        self._lock = asyncio.Lock()
        self.last: Outcome | None = None

    async def champion(self) -> VersionInfo | None:
        try:
            return await asyncio.to_thread(self.registry.model_version, CHAMPION)
        except ServingError as exc:
            if exc.status_code == 404:
                return None
            raise

    async def reconcile(self, trigger: str) -> Outcome:
        async with self._lock:  # a webhook and the periodic loop never overlap
            try:
                outcome = await self._reconcile(trigger)
            except UnavailableError as exc:  # MLflow or the predictor down: the next round
                outcome = Outcome(None, None, "unavailable", trigger, str(exc))
            except ServingError as exc:
                outcome = Outcome(None, None, "failed", trigger, str(exc))
            if outcome != self.last or outcome.action not in ("unchanged", REFUSED):
                log.warning("reconcile (%s): %s", trigger, outcome.line())
            self.last = outcome
            return outcome

    async def _reconcile(self, trigger: str) -> Outcome:
        info = await self.champion()
        champion = None if info is None else info.version
        served = await self.target.current()
        if info is None or champion is None:
            return Outcome(None, served, "no-champion", trigger)
        if champion == served:
            return Outcome(champion, served, "unchanged", trigger)
        if info.tags.get(STATUS_TAG) == REFUSED and trigger != "manual":
            # Refused before (the tag is the reconciler's own record): not again in a loop.
            # A manual reconcile asks again; the predictor answers from its own mark.
            earlier = info.tags.get(ERROR_TAG, "")
            return Outcome(champion, served, REFUSED, trigger, earlier)
        try:
            await self.target.apply(champion)
            outcome = Outcome(champion, served, "deployed", trigger)
        except VersionRefusedError as exc:
            outcome = Outcome(champion, served, REFUSED, trigger, str(exc))
        except UnavailableError:
            raise
        except ServingError as exc:
            outcome = Outcome(champion, served, "failed", trigger, str(exc))
        await asyncio.to_thread(self._tag, outcome)
        return outcome

    def _tag(self, outcome: Outcome) -> None:
        """`deployed.*` tags on the version, through the MLflow REST API."""
        assert outcome.champion is not None
        status = {"deployed": "serving", REFUSED: REFUSED}.get(outcome.action, "failed")
        tags = {
            "status": status,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "target": self.target.description,
            "previous_version": outcome.served_before or "",
            "trigger": outcome.trigger,
        }
        tags["error"] = outcome.error[:500]  # cleared on success
        try:
            for key, value in tags.items():
                self._set_tag(outcome.champion, key, value)
        except httpx.HTTPError as exc:  # the outcome stands; its record is best effort
            log.warning("could not tag version %s: %s", outcome.champion, exc)

    def _set_tag(self, version: str, key: str, value: str) -> None:
        httpx.post(
            f"{self.registry.uri}/api/2.0/mlflow/model-versions/set-tag",
            json={
                "name": self.settings.project,
                "version": version,
                "key": TAG_PREFIX + key,
                "value": value,
            },
            timeout=10.0,
        ).raise_for_status()


def webhook_app(reconciler: Reconciler) -> App:
    settings = reconciler.settings
    app = App(1024 * 1024)

    async def webhook(request: Request) -> Response:
        if not settings.webhook_secret:
            raise WebhookRejectedError("webhooks are disabled: CASTML_WEBHOOK_SECRET is not set")
        verify(
            settings.webhook_secret,
            request.headers,
            request.body,
            settings.webhook_max_age_s,
            time.time(),
        )
        event = request.json()
        if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
            raise BadRequestError("not an MLflow webhook payload")
        data = event["data"]
        relevant = (
            event.get("entity") == "model_version_alias"
            and data.get("name") == settings.project
            and data.get("alias") == CHAMPION
        )
        if not relevant:
            return json_response({"ignored": f"{event.get('entity')}.{event.get('action')}"})
        outcome = await reconciler.reconcile(f"webhook:{request.headers.get(DELIVERY_HEADER, '')}")
        return json_response(asdict(outcome))

    async def reconcile_now(request: Request) -> Response:
        return json_response(asdict(await reconciler.reconcile("manual")))

    async def live(request: Request) -> Response:
        return json_response(
            {"live": True, "last": asdict(reconciler.last) if reconciler.last else None}
        )

    tasks: list[asyncio.Task[None]] = []

    async def periodic() -> None:
        while True:
            try:
                await reconciler.reconcile("periodic")
            except Exception as exc:  # a bug; the backstop keeps running whatever one round hit
                log.error("periodic reconcile failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(settings.reconcile_interval_s)

    async def start() -> None:
        tasks.append(asyncio.create_task(periodic()))

    async def stop() -> None:
        for task in tasks:
            task.cancel()

    app.route("POST", "/webhooks/mlflow", webhook)
    app.route("POST", "/reconcile", reconcile_now)
    app.route("GET", "/healthz", live)
    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    return app


def make_target(settings: RolloutSettings) -> Target:
    if settings.rollout_mode == "cluster":
        return ClusterTarget(
            settings.namespace, settings.isvc_name or isvc.isvc_name(settings.project)
        )
    return EmbeddedTarget(settings.predictor_url, settings.project)


def event_body(name: str, alias: str, version: str) -> bytes:
    """An MLflow `model_version_alias.created` delivery body (for tests and the demo)."""
    return orjson.dumps(
        {
            "entity": "model_version_alias",
            "action": "created",
            "timestamp": datetime.now(UTC).isoformat(),
            "data": {"name": name, "alias": alias, "version": version},
        }
    )
