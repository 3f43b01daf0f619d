"""`WS /ws/performance`: live metrics, system health and performance alerts.

Every `studio_metrics_interval_s` the socket sends
- `metrics_update`: the watched run's performance (`studio.performance`: holdout metrics
  and the served model's response time, measured anew each time); the watched run is
  `?run_id=` or the newest completed run, none until one exists;
- `system_health`: cpu and memory (psutil, this machine), and the API's success and error
  rates since start (`ApiStats`, counted by a middleware);
- `performance_alert`, for each threshold crossed: accuracy below
  `studio_accuracy_alert` or response time above `studio_response_alert_ms`. Severity
  `warning`; `critical` past twice the response threshold or 0.1 under the accuracy one.
Alerts are also kept (the newest `MAX_ALERTS`) for the dashboards.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field
from typing import Any

import psutil
from starlette.websockets import WebSocket, WebSocketDisconnect

from castml.errors import CastmlError
from studio.settings import StudioSettings

MAX_ALERTS = 200


@dataclass
class ApiStats:
    started: float = field(default_factory=time.time)
    success: int = 0
    errors: int = 0

    def count(self, status: int) -> None:
        if status >= 400:
            self.errors += 1
        else:
            self.success += 1

    def health(self) -> dict[str, Any]:
        total = self.success + self.errors
        return {
            "cpu": psutil.cpu_percent(interval=None),
            "memory": psutil.virtual_memory().percent,
            "requests": total,
            "api_success_rate": round(self.success / total, 4) if total else 1.0,
            "api_error_rate": round(self.errors / total, 4) if total else 0.0,
            "uptime_s": round(time.time() - self.started, 1),
        }


def alerts_for(performance: dict[str, Any], settings: StudioSettings) -> list[dict[str, Any]]:
    found = []
    accuracy, response = performance.get("accuracy"), performance.get("response_time")
    floor, ceiling = settings.studio_accuracy_alert, settings.studio_response_alert_ms
    if accuracy is not None and accuracy < floor:
        found.append(
            {
                "metric": "accuracy",
                "value": accuracy,
                "threshold": floor,
                "severity": "critical" if accuracy < floor - 0.1 else "warning",
                "message": f"accuracy {accuracy:.3f} is below {floor} "
                "(CASTML_STUDIO_ACCURACY_ALERT)",
            }
        )
    if response is not None and response > ceiling:
        found.append(
            {
                "metric": "response_time",
                "value": response,
                "threshold": ceiling,
                "severity": "critical" if response > 2 * ceiling else "warning",
                "message": f"response time {response:.1f} ms is above {ceiling} ms "
                "(CASTML_STUDIO_RESPONSE_ALERT_MS)",
            }
        )
    for alert in found:
        alert.update(
            {"type": "performance_alert", "run_id": performance["run_id"], "at": time.time()}
        )
    return found


@dataclass
class AlertLog:
    alerts: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=MAX_ALERTS)
    )

    def add(self, alert: dict[str, Any]) -> None:
        self.alerts.append(alert)

    def recent(self, count: int = 20) -> list[dict[str, Any]]:
        return list(self.alerts)[-count:][::-1]


async def performance_socket(
    websocket: WebSocket,
    settings: StudioSettings,
    stats: ApiStats,
    alert_log: AlertLog,
    watched: Any,  # (run_id | None) -> performance dict or None
    run_id: str | None,
) -> None:
    await websocket.accept()
    try:
        while True:
            try:
                performance = await asyncio.to_thread(watched, run_id)
            except CastmlError as exc:
                performance = None
                await websocket.send_json({"type": "metrics_error", "error": str(exc)})
            if performance is not None:
                await websocket.send_json({"type": "metrics_update", **performance})
                for alert in alerts_for(performance, settings):
                    alert_log.add(alert)
                    await websocket.send_json(alert)
            await websocket.send_json({"type": "system_health", **stats.health()})
            await asyncio.sleep(settings.studio_metrics_interval_s)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return
