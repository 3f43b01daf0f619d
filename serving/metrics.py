"""Prometheus metrics of one server: per-stage latency histograms, request counts, version.

Each app owns its registry, so several servers can live in one process (the tests).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Sub-millisecond buckets: the predictor's stages take tens to hundreds of microseconds.
BUCKETS = (
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    1e-3,
    2.5e-3,
    5e-3,
    1e-2,
    2.5e-2,
    5e-2,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class ServerMetrics:
    def __init__(self, server: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.stage = Histogram(
            "castml_serving_stage_seconds",
            "Latency of one stage of a request.",
            ["server", "stage"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "castml_serving_requests",
            "Requests answered, by endpoint and status class.",
            ["server", "endpoint", "status"],
            registry=self.registry,
        )
        self.rows = Counter(
            "castml_serving_rows",
            "Rows predicted or explained.",
            ["server"],
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "castml_serving_batch_rows",
            "Rows per model call (micro-batches included).",
            ["server"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096),
            registry=self.registry,
        )
        self.version = Gauge(
            "castml_serving_model_version",
            "The registry version being served (1 = current).",
            ["server", "project", "version"],
            registry=self.registry,
        )
        self.server = server
        # Children bound once: labels() costs a dict lookup and a lock per call.
        self.decode = self.stage.labels(server, "decode")
        self.predict = self.stage.labels(server, "predict")
        self.encode = self.stage.labels(server, "encode")
        self.total = self.stage.labels(server, "total")
        self.rows_child = self.rows.labels(server)
        self.batch_child = self.batch_rows.labels(server)

    def served(self, project: str, version: str) -> None:
        self.version.clear()
        self.version.labels(self.server, project, version).set(1)

    def render(self) -> tuple[bytes, bytes]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST.encode()
