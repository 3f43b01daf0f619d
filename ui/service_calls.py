"""The UI's own HTTP calls to the rooms: predict, explain, and each server's health.

The UI never imports a room (DESIGN.md §3): it speaks the servers' public contracts
over HTTP. A server that does not answer becomes `ServiceDownError` naming it (the app
shows a banner); a refusal (4xx/5xx with the error contract's body) becomes
`ServiceRefusedError` carrying the server's message and the fields it named.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from castml.errors import CastmlError
from ui.settings import UiSettings

Service = Literal["predictor", "transformer", "explainer", "knowledge", "collector", "mlflow"]
SERVICES: tuple[Service, ...] = (
    "transformer",
    "explainer",
    "knowledge",
    "predictor",
    "collector",
    "mlflow",
)
HEALTH_TIMEOUT_S = 1.5


class ServiceDownError(CastmlError):
    """A server did not answer (refused, timed out, or answered 503)."""

    status_code = 503

    def __init__(self, service: Service, url: str, reason: str) -> None:
        self.service = service
        self.url = url
        self.reason = reason
        super().__init__(f"{service} ({url}) is down: {reason}")


class ServiceRefusedError(CastmlError):
    """A server answered with an error: its status, its message, and the fields it named."""

    def __init__(
        self, service: Service, status: int, message: str, fields: list[tuple[str, str]]
    ) -> None:
        self.service = service
        self.status = status
        self.message = message
        self.fields = fields
        super().__init__(f"{service} answered {status}: {message}")


def base_url(settings: UiSettings, service: Service) -> str:
    urls: dict[Service, str] = {
        "predictor": settings.predictor_url,
        "transformer": settings.transformer_url,
        "explainer": settings.explainer_url,
        "knowledge": settings.knowledge_url,
        "collector": settings.collector_url,
        "mlflow": settings.tracking_uri,
    }
    return urls[service].rstrip("/")


HEALTH_PATHS: dict[Service, str] = {
    "predictor": "/v2/health/ready",
    "transformer": "/v2/health/live",
    "explainer": "/v2/health/live",
    "knowledge": "/v2/health/live",
    "collector": "/healthz",
    "mlflow": "/health",
}


def _reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused"
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    return type(exc).__name__


def _refusal(service: Service, response: httpx.Response) -> ServiceRefusedError:
    """The error contract's body (`{"error", "type", "details"}`) as a refusal."""
    message = response.text[:300]
    named: list[tuple[str, str]] = []
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = str(body.get("error") or body.get("detail") or message)
        for detail in body.get("details") or []:
            if isinstance(detail, dict) and "field" in detail:
                named.append((str(detail["field"]), str(detail.get("problem", ""))))
    return ServiceRefusedError(service, response.status_code, message, named)


def post_json(
    settings: UiSettings, service: Service, path: str, body: dict[str, Any], timeout_s: float
) -> tuple[dict[str, Any], float]:
    """POST `body`; the answer and the round trip in ms. Raises the two errors above."""
    url = base_url(settings, service) + path
    started = time.perf_counter()
    try:
        response = httpx.post(url, json=body, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ServiceDownError(service, base_url(settings, service), _reason(exc)) from None
    elapsed_ms = (time.perf_counter() - started) * 1000
    if response.status_code in (502, 503, 504):
        raise ServiceDownError(
            service, base_url(settings, service), _refusal(service, response).message
        )
    if response.status_code >= 400:
        raise _refusal(service, response)
    answer = response.json()
    if not isinstance(answer, dict):
        raise ServiceRefusedError(service, response.status_code, "answer is not an object", [])
    return answer, elapsed_ms


@dataclass(frozen=True)
class Prediction:
    """The transformer's answer for one shot, and the round trip the UI measured."""

    class_name: str
    probability: float
    confidence: str
    latent: list[float]
    model_version: str
    request_id: str
    server_ms: float
    round_trip_ms: float
    # The transformer's answer as sent: the assistant's report reuses it instead of
    # predicting (and logging) the same shot again.
    answer: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def predict(settings: UiSettings, shot: dict[str, float]) -> Prediction:
    path = f"/v1/models/{settings.project}:predict"
    answer, elapsed = post_json(
        settings, "transformer", path, {"features": shot}, settings.step_timeout_s
    )
    prediction = answer.get("prediction") or {}
    return Prediction(
        class_name=str(prediction.get("class", "")),
        probability=float(prediction.get("probability", 0.0)),
        confidence=str(prediction.get("confidence", "")),
        latent=[float(v) for v in answer.get("latent_features") or []],
        model_version=str(answer.get("model_version", "")),
        request_id=str(answer.get("request_id", "")),
        server_ms=float(answer.get("processing_time_ms", 0.0)),
        round_trip_ms=elapsed,
        answer=answer,
    )


@dataclass(frozen=True)
class Explanation:
    """The explainer's SHAP answer for one shot."""

    base_value: float
    prediction: float
    attributions: dict[str, float]
    values: dict[str, float]
    model_version: str
    top: list[str] = field(default_factory=list)


def explain(settings: UiSettings, shot: dict[str, float], top_k: int = 10) -> Explanation:
    """SHAP over the raw features (no PNG: the UI draws its own chart)."""
    path = f"/v1/models/{settings.project}:explain"
    body = {"features": shot, "method": "shap", "top_k": top_k, "chart": False}
    # SHAP by permutations takes longer than a prediction: twice the step's budget.
    answer, _ = post_json(settings, "explainer", path, body, settings.step_timeout_s * 2)
    attributions = {str(k): float(v) for k, v in (answer.get("attributions") or {}).items()}
    return Explanation(
        base_value=float(answer.get("base_value", 0.0)),
        prediction=float(answer.get("prediction", 0.0)),
        attributions=attributions,
        values={k: float(v) for k, v in shot.items()},
        model_version=str(answer.get("model_version", "")),
        top=[str(t["feature"]) for t in answer.get("top_features") or [] if "feature" in t],
    )


@dataclass(frozen=True)
class Health:
    service: Service
    url: str
    up: bool
    reason: str = ""


def _probe(settings: UiSettings, service: Service) -> Health:
    url = base_url(settings, service)
    if not url.startswith(("http://", "https://")):
        return Health(service, url, True)  # a file or SQLite MLflow store: nothing to reach
    try:
        response = httpx.get(url + HEALTH_PATHS[service], timeout=HEALTH_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return Health(service, url, False, _reason(exc))
    if response.status_code != 200:
        return Health(service, url, False, f"health answered {response.status_code}")
    return Health(service, url, True)


def check_health(settings: UiSettings, services: tuple[Service, ...] = SERVICES) -> list[Health]:
    """Every server probed at once (a down one costs one timeout, not one each)."""
    with ThreadPoolExecutor(len(services)) as pool:
        return list(pool.map(lambda s: _probe(settings, s), services))
