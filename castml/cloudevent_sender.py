"""CloudEvents sender for the embedded mode: what KServe's logger sidecar does in a cluster.

The serving side calls `emit_request` / `emit_response` with the v2 payloads; a
background thread posts them to the collector as binary-mode CloudEvents
(`org.kubeflow.serving.inference.request` / `.response`, one shared `ce-id`), so the
collector sees the same events in both modes.

Memory is bounded: the queue holds `max_queue` events. When it is full, the new event
is refused (never an older one dropped), `emit_*` returns False and `stats().refused`
counts it, so a loss is always visible. Connection errors, 5xx and 503 (the
collector's back-pressure, honouring Retry-After) are retried with capped exponential
backoff until the sender is closed; a 4xx is the event's own fault and is counted in
`rejected` instead of being retried for ever.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from castml.protocol.cloudevents import REQUEST_TYPE, RESPONSE_TYPE, SPEC_VERSION

_STOP = object()


@dataclass(frozen=True)
class SenderStats:
    queued: int  # waiting in memory now
    sent: int  # acknowledged by the collector (2xx)
    refused: int  # not queued: the queue was full when emit_* was called
    rejected: int  # answered 4xx: malformed or unauthorised, not retried
    retries: int  # attempts repeated after a connection error, 5xx or 503
    unsent: int  # still queued or in flight when close() gave up waiting


@dataclass(frozen=True)
class _Event:
    headers: dict[str, str]
    body: bytes


def _retryable(status: int) -> bool:
    return status >= 500 or status in (408, 429)


class EventSender:
    """A bounded queue and `workers` threads posting CloudEvents to one collector URL."""

    def __init__(
        self,
        url: str,
        inference_service: str,
        token: str | None = None,
        *,
        namespace: str = "default",
        component: str = "predictor",
        endpoint: str = "default",
        max_queue: int = 10_000,
        workers: int = 1,
        timeout_s: float = 10.0,
        backoff_s: float = 0.05,
        max_backoff_s: float = 2.0,
    ) -> None:
        self.url = url
        self.extensions = {
            "ce-inferenceservicename": inference_service,
            "ce-namespace": namespace,
            "ce-component": component,
            "ce-endpoint": endpoint,
        }
        self.source = f"http://localhost/{inference_service}/{component}"
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(headers=headers, timeout=timeout_s)
        self._queue: queue.Queue[_Event | object] = queue.Queue(max_queue)
        self._lock = threading.Lock()
        self._counts = {"sent": 0, "refused": 0, "rejected": 0, "retries": 0, "unsent": 0}
        self._in_flight = 0
        self._closing = threading.Event()
        self._abandon = False  # set by close() once its deadline has passed
        self._threads = [
            threading.Thread(target=self._work, name=f"ce-sender-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    # --- the serving side's calls -----------------------------------------------------
    def emit_request(self, event_id: str, payload: bytes) -> bool:
        """Queue the request half (`payload`: the JSON body the server received)."""
        return self._emit(REQUEST_TYPE, event_id, payload)

    def emit_response(self, event_id: str, payload: bytes) -> bool:
        """Queue the response half (`payload`: the v2 JSON body the server answered)."""
        return self._emit(RESPONSE_TYPE, event_id, payload)

    def _emit(self, ce_type: str, event_id: str, payload: bytes) -> bool:
        headers = {
            "ce-specversion": SPEC_VERSION,
            "ce-id": event_id,
            "ce-type": ce_type,
            "ce-source": self.source,
            "ce-time": datetime.now(UTC).isoformat(),
            "content-type": "application/json",
            **self.extensions,
        }
        if self._closing.is_set():
            self._count("refused")
            return False
        try:
            self._queue.put_nowait(_Event(headers, payload))
        except queue.Full:
            self._count("refused")
            return False
        return True

    # --- delivery -----------------------------------------------------------------------
    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, _Event)
            with self._lock:
                self._in_flight += 1
            try:
                self._deliver(item)
            finally:
                with self._lock:
                    self._in_flight -= 1

    def _deliver(self, event: _Event) -> None:
        delay = self.backoff_s
        while True:
            wait = delay
            try:
                # UTF-8, not httpx's default ASCII: a client's non-ASCII request id (the
                # ce-id) would otherwise raise here and end this delivery thread.
                headers = httpx.Headers(event.headers, encoding="utf-8")
                answer = self._client.post(self.url, headers=headers, content=event.body)
            except httpx.TransportError:
                pass  # collector down or restarting: retry below
            else:
                if answer.is_success:
                    self._count("sent")
                    return
                if not _retryable(answer.status_code):
                    self._count("rejected")
                    return
                wait = max(delay, _retry_after(answer))
            if self._closing.wait(wait) and self._abandon:
                self._count("unsent")
                return
            self._count("retries")
            delay = min(delay * 2, self.max_backoff_s)

    # --- life cycle ---------------------------------------------------------------------
    def stats(self) -> SenderStats:
        with self._lock:
            counts = dict(self._counts)
        return SenderStats(queued=self._queue.qsize(), **counts)

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until everything queued is delivered (or rejected); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                idle = self._in_flight == 0
            if idle and self._queue.empty():
                return True
            time.sleep(0.01)
        return False

    def close(self, timeout_s: float = 10.0) -> SenderStats:
        """Deliver what is queued for up to `timeout_s`, then stop; leftovers count as unsent."""
        self.flush(timeout_s)
        self._abandon = True
        self._closing.set()
        leftover = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            leftover += item is not _STOP
        self._count("unsent", leftover)
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join(timeout_s)
        self._client.close()
        return self.stats()

    def __enter__(self) -> EventSender:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def _retry_after(answer: httpx.Response) -> float:
    try:
        return float(answer.headers.get("retry-after", 0))
    except ValueError:
        return 0.0
