"""Prometheus metrics of the collector, on a registry per instance (tests run several)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge


class CollectorMetrics:
    def __init__(self, gauges_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        if gauges_dir is not None:
            from monitoring.drift_metrics import TextfileGauges

            # The drift CronJob cannot be scraped; its gauges ride on the collector's /metrics.
            r.register(TextfileGauges(gauges_dir))
        self.received = Counter(
            "castml_collector_events_received",
            "Events acknowledged (durable in the WAL).",
            ["kind", "project"],
            registry=r,
        )
        self.written = Counter(
            "castml_collector_rows_written",
            "Rows placed in Parquet files.",
            ["kind", "project"],
            registry=r,
        )
        self.dropped = Counter(
            "castml_collector_events_dropped",
            "Acknowledged events lost. The design keeps this at 0; alert if it ever moves.",
            registry=r,
        )
        self.rejected = Counter(
            "castml_collector_events_rejected",
            "Events answered 4xx/503 (not acknowledged, the sender keeps them).",
            ["reason"],
            registry=r,
        )
        self.deadlettered = Counter(
            "castml_collector_events_deadlettered",
            "Acknowledged events that could not be written to Parquet (nor read back from the "
            "WAL) and went to the dead-letter file beside the WAL instead, each with its error. "
            "Ingest validation should keep this at 0: alert if it moves, then read the file.",
            ["reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "castml_collector_duplicates", "Events seen before, answered idempotently.", registry=r
        )
        self.orphans = Counter(
            "castml_collector_orphans",
            "Halves written without their partner.",
            ["kind"],
            registry=r,
        )
        self.unknown_feedback = Counter(
            "castml_collector_feedback_unknown_request",
            "Labels for a request id the collector has not seen (kept, and reported here).",
            registry=r,
        )
        self.write_errors = Counter(
            "castml_collector_write_errors", "Failed WAL or Parquet writes.", ["stage"], registry=r
        )
        self.queue_depth = Gauge(
            "castml_collector_queue_depth", "Events in memory not yet in Parquet.", registry=r
        )
        self.lag = Gauge(
            "castml_collector_lag_seconds",
            "Age of the oldest acknowledged event not yet in Parquet.",
            registry=r,
        )
        self.recovered = Counter(
            "castml_collector_recovered", "Events replayed from the WAL at start-up.", registry=r
        )
