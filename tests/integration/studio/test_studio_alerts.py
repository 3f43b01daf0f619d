"""Performance, alerts and dashboards: the served model's real latency against a threshold
lowered (for this test) to 0.001 ms, so the alert must fire."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.sync.client import connect

from tests.integration.studio.conftest import Studio, Trained

pytestmark = pytest.mark.integration


def test_performance_is_measured_on_the_served_model(studio: Studio, trained: Trained) -> None:
    answer = httpx.get(f"{studio.url}/api/performance/{trained.run_id}", timeout=300)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    for key in ("accuracy", "precision", "recall", "f1_score"):
        assert 0.0 <= body[key] <= 1.0
    assert body["response_time"] > 0
    assert body["response_time_source"].startswith("served predictor (v2 REST")


def test_alerts_fire_past_the_threshold(studio: Studio, trained: Trained) -> None:
    seen: dict[str, dict] = {}
    with connect(f"{studio.ws}/ws/performance?run_id={trained.run_id}") as socket:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            message = json.loads(socket.recv(timeout=240))
            key = message["type"] + (":" + message["metric"] if "metric" in message else "")
            seen.setdefault(key, message)
            if {"metrics_update", "system_health", "performance_alert:response_time"} <= set(seen):
                break
    update = seen["metrics_update"]
    assert update["run_id"] == trained.run_id and update["response_time"] > 0
    latency = seen["performance_alert:response_time"]
    assert latency["run_id"] == trained.run_id
    assert latency["value"] > latency["threshold"] == 0.001
    assert latency["severity"] == "critical"  # far past twice the threshold
    health = seen["system_health"]
    assert 0 <= health["cpu"] <= 100 and 0 < health["memory"] <= 100
    assert 0 <= health["api_error_rate"] <= 1 and health["api_success_rate"] > 0


def test_dashboards_say_what_they_hold(studio: Studio, trained: Trained) -> None:
    si = httpx.get(f"{studio.url}/api/dashboard/si", timeout=60).json()
    assert {"runs", "models", "traffic", "active_trainings", "alerts"} <= set(si)
    assert any(m["run_id"] == trained.run_id for m in si["models"])
    assert si["runs"]["by_status"].get("completed", 0) >= 1
    client = httpx.get(f"{studio.url}/api/dashboard/client", timeout=60).json()
    assert {"traffic", "model", "alerts"} <= set(client)
    assert any(t["file_id"] == trained.file_id for t in client["traffic"])
    assert client["model"]["pdf_url"].startswith("/api/report/pdf/")
