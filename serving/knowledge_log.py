"""The knowledge role's query log: each query and the source ids it was answered from.

Off the answer's path of failure (a logging fault never fails a query), to one of two sinks:

- with `CASTML_LOGGER_URL` set, the collector: the query and its answer as the two
  KServe-logger CloudEvents the predictor sends (one `ce-id`, `ce-component: knowledge`,
  `inferenceservicename: <project>-kb`) through the predictor's sender
  (`castml.cloudevent_sender`, bounded, retried). The collector keeps each query with its
  version, language, no-answer flag, source ids and documents in Parquet under
  `logs/<project>-kb/<version>/date=YYYY-MM-DD/` (`monitoring.kb_ingest`), where
  `castml lineage <project>-kb` reads it; what it refuses shows on `/metrics` as
  `castml_logger_events_rejected_total`. The events carry what that row needs, not the
  answer's text;
- unset, a local JSONL instead, one file a day, `<kb_log_dir>/<YYYY-MM-DD>.jsonl` (default
  `<home>/logs/<project>-kb/`): the record of a role that runs without a collector. Nothing
  reads it back; it is there for a person to read.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from castml.cloudevent_sender import EventSender
from serving.metrics import ServerMetrics
from serving.payload_log import SenderMetrics
from serving.settings import ServingSettings

log = logging.getLogger("serving.knowledge")


class KnowledgeLog:
    def __init__(self, directory: Path, sender: EventSender | None = None) -> None:
        self.directory = directory
        self.sender = sender
        self._lock = threading.Lock()

    def record(
        self,
        request_id: str,
        model_name: str,
        version: str,
        request: dict[str, Any],
        answer: dict[str, Any],
        no_answer: bool,
    ) -> None:
        try:
            sources = answer.get("sources", [])
            if self.sender is None:
                self._append(request_id, model_name, version, request, answer, no_answer)
                return
            # The two halves `monitoring.kb_ingest` reads: the query as asked, and what the
            # answer cited (each source's id, document and relevance), not its text.
            self.sender.emit_request(request_id, orjson.dumps({"id": request_id, **request}))
            cited = [
                {"id": s.get("id"), "document": s.get("document"), "relevance": s.get("relevance")}
                for s in sources
            ]
            self.sender.emit_response(
                request_id,
                orjson.dumps(
                    {
                        "model_name": model_name,
                        "model_version": version,
                        "id": request_id,
                        "language": answer.get("language"),
                        "no_answer": no_answer,
                        "sources": cited,
                    }
                ),
            )
        except Exception:  # the answer is already made; a log fault must not fail it
            log.exception("knowledge log: query %s not logged", request_id)

    def _append(
        self,
        request_id: str,
        model_name: str,
        version: str,
        request: dict[str, Any],
        answer: dict[str, Any],
        no_answer: bool,
    ) -> None:
        sources = answer.get("sources", [])
        now = datetime.now(UTC)
        line = {
            "id": request_id,
            "time": now.isoformat(timespec="milliseconds"),
            "model_name": model_name,
            "model_version": version,
            "query": request.get("query"),
            "language": answer.get("language"),
            "context": request.get("context"),
            "filters": request.get("filters"),
            "no_answer": no_answer,
            "source_ids": [s.get("id") for s in sources],
            "documents": [s.get("document") for s in sources],
        }
        encoded = orjson.dumps(line) + b"\n"
        path = self.directory / f"{now.date().isoformat()}.jsonl"
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as out:
                out.write(encoded)

    def close(self, timeout_s: float) -> None:
        if self.sender is not None:
            self.sender.close(timeout_s)


def knowledge_log(
    settings: ServingSettings, model_name: str, metrics: ServerMetrics
) -> KnowledgeLog:
    directory = settings.kb_log_dir or settings.home / "logs" / model_name
    sender = None
    if settings.logger_url:
        sender = EventSender(
            settings.logger_url,
            model_name,
            settings.logger_token,
            namespace=settings.logger_namespace,
            component="knowledge",
            max_queue=settings.logger_queue_size,
        )
        metrics.registry.register(SenderMetrics(sender, metrics.server))
    return KnowledgeLog(directory.resolve(), sender)
