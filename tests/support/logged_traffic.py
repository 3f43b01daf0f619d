"""Traffic and delayed labels logged through the collector's own code path, in process.

parse -> record -> WAL -> join -> Parquet, as the collector does for the KServe
logger's CloudEvents and `/v1/feedback` posts: the files have exactly the layout
and schema a reader of `logs/` meets in production.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np

from castml.cli.logger_cloudevents import binary_event, v2_response
from monitoring.collector import Collector
from monitoring.collector_app import spec_features
from monitoring.event_ingest import decode
from monitoring.feedback_ingest import feedback_record
from monitoring.settings import CollectorSettings


def v2_request(rows: np.ndarray) -> dict[str, Any]:
    """As a client sends it: JSON numbers, so 1e39 arrives as 1e39 (payloads casts to FP32)."""
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP32"}
    return {"inputs": [{**tensor, "data": rows.astype(np.float64).ravel().tolist()}]}


class Traffic:
    """Requests (id -> rows, serving version) and delayed labels, logged for real."""

    def __init__(self, project: str = "diecast") -> None:
        self.project = project
        self.requests: list[tuple[str, np.ndarray, str]] = []
        self.labels: dict[str, float] = {}

    def add(
        self,
        rid: str,
        rows: np.ndarray,
        label: float | None,
        version: str = "1",
    ) -> None:
        self.requests.append((rid, np.atleast_2d(rows), version))
        if label is not None:
            self.labels[rid] = label

    async def _log(self, home: Path) -> None:
        core = Collector(CollectorSettings.model_validate({"home": home}), spec_features)
        await core.start()
        try:
            records: list[Any] = []
            for rid, rows, version in self.requests:
                score = np.full(len(rows), 0.2)
                response = v2_response(score, self.project, version, rid)
                for kind, data in (("request", v2_request(rows)), ("response", response)):
                    headers, body = binary_event(kind, rid, self.project, data)
                    records.append(decode(headers, body, core.features_of))
            for rid, label in self.labels.items():
                item = {"request_id": rid, "label": label}
                records.append(
                    feedback_record(item, core.knows_request, self.project, core.features_of)
                )
            # Concurrently, as an HTTP server would: the WAL commits them in groups.
            await asyncio.gather(*(core.submit(r) for r in records))
            await core.flush()
        finally:
            await core.stop()

    def log(self, home: Path) -> Path:
        """Write everything under `home/logs`; returns that folder."""
        asyncio.run(self._log(home))
        return home / "logs"
