"""Prometheus metrics of one server: per-stage latency histograms, request counts, version.

Each app owns its registry, so several servers can live in one process (the tests).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

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


class LeanHistogram:
    """One histogram series; `observe` is a bisect and three additions under a lock.

    prometheus_client's `Histogram.observe` costs about 3 us (a lock and a Python call per
    bucket structure); the predictor observes four stages per request, so that was a
    tenth of a single-row request. Exposed through `HistogramFamily` in the same format.
    """

    def __init__(self, buckets: Sequence[float]) -> None:
        self.bounds = list(buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        index = bisect_left(self.bounds, value)  # le: a value equal to a bound counts in it
        with self._lock:
            self.counts[index] += 1
            self.sum += value

    def snapshot(self) -> tuple[list[tuple[str, float]], float]:
        with self._lock:
            counts, total = list(self.counts), self.sum
        cumulative, running = [], 0
        for bound, count in zip([*map(str, self.bounds), "+Inf"], counts, strict=True):
            running += count
            cumulative.append((bound, float(running)))
        return cumulative, total


class HistogramFamily(Collector):
    """A labelled histogram family made of `LeanHistogram` children."""

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self.name, self.documentation = name, documentation
        self.label_names, self.buckets = list(labels), tuple(buckets)
        self.children: dict[tuple[str, ...], LeanHistogram] = {}

    def labels(self, *values: str) -> LeanHistogram:
        return self.children.setdefault(tuple(values), LeanHistogram(self.buckets))

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.label_names)
        for values, child in list(self.children.items()):
            buckets, total = child.snapshot()
            family.add_metric(list(values), buckets, total)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.label_names)


class ServerMetrics:
    def __init__(self, server: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.stage = HistogramFamily(
            "castml_serving_stage_seconds",
            "Latency of one stage of a request.",
            ["server", "stage"],
            BUCKETS,
        )
        self.registry.register(self.stage)
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
        self.batch_rows = HistogramFamily(
            "castml_serving_batch_rows",
            "Rows per model call (micro-batches included).",
            ["server"],
            (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096),
        )
        self.registry.register(self.batch_rows)
        self.version = Gauge(
            "castml_serving_model_version",
            "The registry version being served (1 = current).",
            ["server", "project", "version"],
            registry=self.registry,
        )
        self.server = server
        # Children bound once: labels() costs a dict lookup (and a lock, for a Counter).
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


class KnowledgeMetrics(ServerMetrics):
    """The knowledge role's: answered / no-answer counts and the recent no-answer rate.

    The gauge covers the latest `window` queries, so an alert reads it directly
    (castml/cli/alert_rules.py `CastmlKnowledgeNoAnswerRate`); the counters let a
    dashboard compute any other window.
    """

    def __init__(self, project: str, window: int) -> None:
        super().__init__("knowledge")
        self.answers = Counter(
            "castml_kb_answers",
            "Knowledge-base queries answered, by outcome (answered, no_answer).",
            ["project", "outcome"],
            registry=self.registry,
        )
        self.no_answer_rate = Gauge(
            "castml_kb_no_answer_rate",
            "Share of the latest queries the knowledge base had no good answer to.",
            ["project"],
            registry=self.registry,
        )
        self.recent_queries = Gauge(
            "castml_kb_recent_queries",
            "Queries the no-answer rate is computed over (at most the window).",
            ["project"],
            registry=self.registry,
        )
        self.project = project
        self._answered = self.answers.labels(project, "answered")
        self._no_answer = self.answers.labels(project, "no_answer")
        self._rate = self.no_answer_rate.labels(project)
        self._recent_count = self.recent_queries.labels(project)
        self._recent: deque[bool] = deque(maxlen=window)
        self._lock = threading.Lock()
        self._rate.set(0.0)
        self._recent_count.set(0)

    def outcome(self, no_answer: bool) -> None:
        (self._no_answer if no_answer else self._answered).inc()
        with self._lock:
            self._recent.append(no_answer)
            misses, seen = sum(self._recent), len(self._recent)
        self._rate.set(misses / seen)
        self._recent_count.set(seen)
