"""What the frontend's two dashboards show.

- `GET /api/dashboard/si` (the operator, "system integrator"): every run by status and
  the newest ten; the registered versions of each studio project with aliases and gate
  verdicts; the API's traffic (requests, success and error rates) and the machine's
  health; the trainings running now; the newest alerts.
- `GET /api/dashboard/client` (the business owner): per upload its traffic (impressions,
  clicks, CTR); the newest completed run's holdout metrics (accuracy, ROC-AUC, F1) and
  where its AI report and PDF are; the number of alerts and the newest five.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from castml import registry
from studio.alerts_ws import AlertLog, ApiStats
from studio.training_runs import TrainingRuns
from studio.uploads import UploadStore


def si_dashboard(runs: TrainingRuns, stats: ApiStats, alerts: AlertLog) -> dict[str, Any]:
    listing = runs.listing()
    client = runs.client()
    models = []
    for project in sorted({str(r["project"]) for r in _records(runs)}):
        for version in client.search_model_versions(f"name='{project}'"):
            models.append(
                {
                    "project": project,
                    "version": int(version.version),
                    "aliases": list(version.aliases),
                    "gate": version.tags.get(registry.TAG_GATE, ""),
                    "run_id": version.run_id,
                }
            )
    return {
        "runs": {"by_status": dict(Counter(r["status"] for r in listing)), "recent": listing[:10]},
        "models": models,
        "traffic": stats.health(),
        "active_trainings": sorted(runs.active),
        "alerts": alerts.recent(20),
    }


def _records(runs: TrainingRuns) -> list[dict[str, Any]]:
    return [runs.record(r["run_id"]) for r in runs.listing()]


def client_dashboard(runs: TrainingRuns, uploads: UploadStore, alerts: AlertLog) -> dict[str, Any]:
    traffic = [
        {
            "file_id": u["file_id"],
            "filename": u["filename"],
            "impressions": u["info"]["totalRows"],
            "clicks": u["info"]["clickedOne"],
            "ctr": u["info"]["ctr"],
        }
        for u in uploads.all_uploads()
    ]
    latest = next((r for r in runs.listing() if r["status"] == "completed"), None)
    model: dict[str, Any] | None = None
    if latest is not None:
        status = runs.status(latest["run_id"])
        model = {
            "run_id": latest["run_id"],
            "file_id": latest["file_id"],
            "model_version": status.get("model_version"),
            "metrics": status.get("evaluation", {}),
            "report_url": f"/api/report/ai/{latest['run_id']}",
            "pdf_url": f"/api/report/pdf/{latest['run_id']}",
        }
    recent = alerts.recent(5)
    return {
        "traffic": traffic,
        "model": model,
        "alerts": {"count": len(alerts.alerts), "recent": recent},
    }
