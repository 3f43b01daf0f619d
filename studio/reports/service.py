"""A run's reports, computed once and kept in its studio folder.

Importance and correlation describe the run's upload (read with its draft spec); the AI
report and the PDF add the run's holdout evaluation from MLflow, so they need a completed
run (409 while it trains, naming its status).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from castml.errors import CastmlError
from castml.web.errors import NotFoundError
from studio.reports import ai_report, charts, llm, pdf
from studio.reports.correlation import correlation
from studio.reports.importance import METHODS, UnknownMethodError, importance
from studio.reports.table import Table, build_table
from studio.settings import StudioSettings
from studio.training_runs import TrainingRuns
from studio.uploads import UploadStore

EVALUATION_ARTIFACT = "evaluation/evaluation.json"
PDF_FILE = "report.pdf"
HOLDOUT_METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1")
CI_METRICS = ("roc_auc_ci_low", "roc_auc_ci_high")


class RunNotReadyError(CastmlError):
    status_code = 409


@dataclass
class Reports:
    settings: StudioSettings
    runs: TrainingRuns
    uploads: UploadStore
    locks: dict[str, threading.Lock] = field(default_factory=dict)
    guard: threading.Lock = field(default_factory=threading.Lock)

    def _cached(self, run_id: str, name: str, compute: Callable[[], Any]) -> Any:
        path = self.runs.run_dir(run_id) / name
        with self.guard:
            lock = self.locks.setdefault(f"{run_id}/{name}", threading.Lock())
        with lock:  # two requests for one report compute it once
            if path.is_file():
                return json.loads(path.read_text())
            value = compute()
            partial = path.with_suffix(".part")
            partial.write_text(json.dumps(value))
            partial.replace(path)
            return value

    def table(self, run_id: str) -> Table:
        file_id = self.runs.record(run_id)["file_id"]
        return build_table(self.uploads.frame(file_id), self.uploads.spec(file_id))

    def importance(self, run_id: str, method: str = "combined") -> list[dict[str, Any]]:
        if method not in METHODS:
            raise UnknownMethodError(
                f"unknown importance method '{method}' (use {', '.join(METHODS)})"
            )
        rows: list[dict[str, Any]] = self._cached(
            run_id, f"importance-{method}.json", lambda: importance(self.table(run_id), method)
        )
        return rows

    def correlation(self, run_id: str) -> dict[str, Any]:
        target = self.uploads.spec(self.runs.record(run_id)["file_id"])["target"]
        matrix: dict[str, Any] = self._cached(
            run_id, "correlation.json", lambda: correlation(self.table(run_id), target)
        )
        return matrix

    def evaluation(self, run_id: str) -> tuple[dict[str, float], dict[str, Any]]:
        """The completed run's holdout metrics and its evaluation.json."""
        status = self.runs.status(run_id)
        if status["status"] != "completed":
            raise RunNotReadyError(
                f"run {run_id} is {status['status']}: reports need a completed run"
                + (f" ({status['reason']})" if status.get("reason") else "")
            )
        import mlflow.artifacts

        run = self.runs.client().get_run(run_id)
        metrics = {k: float(v) for k, v in run.data.metrics.items() if k in HOLDOUT_METRICS}
        metrics.update({k: float(v) for k, v in run.data.metrics.items() if k in CI_METRICS})
        try:
            evaluation: dict[str, Any] = mlflow.artifacts.load_dict(
                f"{run.info.artifact_uri}/{EVALUATION_ARTIFACT}"
            )
        except Exception as exc:
            raise NotFoundError(f"run {run_id} has no {EVALUATION_ARTIFACT}: {exc}") from exc
        return metrics, evaluation

    def ai(self, run_id: str) -> dict[str, Any]:
        metrics, evaluation = self.evaluation(run_id)
        answer = self.uploads.answer(self.runs.record(run_id)["file_id"])
        base_rate = float(answer["info"]["ctr"])
        report = ai_report.compose(
            metrics, evaluation, self.importance(run_id), base_rate, self.settings
        )
        return llm.rewrite(report, self.settings)

    def pdf_path(self, run_id: str) -> Path:
        path = self.runs.run_dir(run_id) / PDF_FILE
        if not path.is_file():
            raise NotFoundError(
                f"no PDF for run {run_id} yet: POST /api/report/generate-pdf/{run_id} first"
            )
        return path

    def generate_pdf(
        self, run_id: str, include_charts: bool, include_insights: bool, include_plan: bool
    ) -> dict[str, Any]:
        report = self.ai(run_id)
        metrics, _ = self.evaluation(run_id)
        drawn: dict[str, bytes] = {}
        if include_charts:
            drawn["특성 중요도 (Feature importance)"] = charts.importance_png(
                self.importance(run_id)
            )
            drawn["상관관계 (Correlation)"] = charts.correlation_png(self.correlation(run_id))
        record = self.runs.record(run_id)
        pdf.render(
            self.runs.run_dir(run_id) / PDF_FILE,
            f"CTR 분석 보고서 (CTR report): {record['filename']}",
            report,
            metrics,
            drawn,
            font=self.settings.studio_font_path,
            include_insights=include_insights,
            include_action_plan=include_plan,
        )
        return {"pdf_url": f"/api/report/pdf/{run_id}", "status": "completed"}
