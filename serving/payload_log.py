"""The predictor's payload logger: what KServe's logger sidecar does in a cluster.

With `CASTML_LOGGER_URL` set, every successful infer (REST and gRPC) is posted to the
collector as two binary-mode CloudEvents, the request and the response, sharing one
`ce-id`: the id the response carries, which is the id the client saw (a transformer
forwards its own request id, so the log has the id the transformer answered with).
Payloads are logged at the predictor only, in both modes. The request thread only
enqueues (a `castml.cloudevent_sender.EventSender` per process delivers, with retries,
from a bounded queue); a full queue refuses the event, never the request, and the refusal
shows on `/metrics` as `castml_logger_events_refused_total`. Unset, none of this is built
and the hot path pays one `is None` test.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from castml.cloudevent_sender import EventSender
from castml.protocol.v2_tensors import output_json
from serving.metrics import ServerMetrics
from serving.settings import ServingSettings

log = logging.getLogger(__name__)
ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
# The collector joins a response by its probability (classification); a client may ask
# for fewer outputs, so the logged response then carries these as well.
LOGGED_OUTPUTS = ("probability", "label")


class PayloadLog:
    """Enqueues (request, response) event pairs on one `EventSender`."""

    def __init__(self, sender: EventSender, outputs: Sequence[str]) -> None:
        self.sender = sender
        self.required = [name for name in LOGGED_OUTPUTS if name in outputs]

    def _emit(self, request_id: str, request_body: bytes, response_body: bytes) -> None:
        """Both halves; a refusal is counted by the sender (and exported), never raised."""
        self.sender.emit_request(request_id, request_body)
        self.sender.emit_response(request_id, response_body)

    def record(
        self,
        request_id: str,
        raw_request: bytes | None,
        x: np.ndarray,
        project: str,
        version: str,
        out: dict[str, np.ndarray],
        wanted: Sequence[str],
        response_body: bytes | None,
    ) -> None:
        """Log one successful infer; never raises into the request.

        `raw_request`: the JSON body as received (None: binary tensors or gRPC, logged
        from `x`). `response_body`: the JSON answered (None: gRPC, encoded from `out`).
        """
        try:
            request_body = (
                raw_request if raw_request is not None else self.request_body(request_id, x)
            )
            if response_body is None or self.needs_own_response(wanted):
                response_body = self.response_body(project, version, request_id, out, wanted)
            self._emit(request_id, request_body, response_body)
        except Exception:  # a logging fault must not fail a prediction already made
            log.exception("payload log: event for request %s not queued", request_id)

    def needs_own_response(self, wanted: Sequence[str]) -> bool:
        """Whether the response the client gets lacks an output the collector needs."""
        return any(name not in wanted for name in self.required)

    def response_body(
        self,
        project: str,
        version: str,
        request_id: str,
        out: dict[str, np.ndarray],
        wanted: Sequence[str],
    ) -> bytes:
        """A v2 response for the log: the client's outputs plus any the collector needs."""
        names = [*wanted, *(n for n in self.required if n not in wanted)]
        return orjson.dumps(
            {
                "model_name": project,
                "model_version": version,
                "id": request_id,
                "outputs": [output_json(name, out[name]) for name in names],
            },
            option=ORJSON_OPTIONS,
        )

    @staticmethod
    def request_body(request_id: str, x: np.ndarray) -> bytes:
        """A JSON v2 request for inputs that arrived as binary tensors or over gRPC.

        The decoded `[N, F]` matrix in spec order: exactly what the model saw.
        """
        return orjson.dumps(
            {
                "id": request_id,
                "inputs": [
                    {
                        "name": "features",
                        "datatype": "FP32",
                        "shape": list(x.shape),
                        "data": np.ascontiguousarray(x).reshape(-1),
                    }
                ],
            },
            option=ORJSON_OPTIONS,
        )

    def close(self, timeout_s: float) -> None:
        self.sender.close(timeout_s)


class SenderMetrics(Collector):
    """The sender's counters, read at scrape time (nothing is counted on the hot path)."""

    def __init__(self, sender: EventSender, server: str) -> None:
        self.sender, self.server = sender, server

    def collect(self) -> Iterator[Metric]:
        stats = self.sender.stats()
        counters: list[tuple[str, str, int]] = [
            ("sent", "Payload events the collector acknowledged.", stats.sent),
            (
                "refused",
                "Payload events not queued because the sender's queue was full (lost).",
                stats.refused,
            ),
            ("rejected", "Payload events the collector answered with a 4xx.", stats.rejected),
            (
                "retries",
                "Payload event deliveries repeated after an error or a 503.",
                stats.retries,
            ),
            ("unsent", "Payload events still queued when the sender was closed.", stats.unsent),
        ]
        for name, documentation, value in counters:
            family = CounterMetricFamily(
                f"castml_logger_events_{name}", documentation, labels=["server"]
            )
            family.add_metric([self.server], value)
            yield family
        depth = GaugeMetricFamily(
            "castml_logger_queue_depth", "Payload events waiting in memory.", labels=["server"]
        )
        depth.add_metric([self.server], stats.queued)
        yield depth

    def describe(self) -> Iterator[Metric]:
        return iter(())


def payload_log(
    settings: ServingSettings, project: str, outputs: Sequence[str], metrics: ServerMetrics
) -> PayloadLog | None:
    """One sender for this process (None when unset), its counters on the server's `/metrics`."""
    if not settings.logger_url:
        return None
    sender = EventSender(
        settings.logger_url,
        project,
        settings.logger_token,
        namespace=settings.logger_namespace,
        max_queue=settings.logger_queue_size,
    )
    metrics.registry.register(SenderMetrics(sender, metrics.server))
    return PayloadLog(sender, outputs)
