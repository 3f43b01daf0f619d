"""The knowledge role's query log: each query and the source ids it was answered from.

Two sinks, both off the answer's path of failure (a logging fault never fails a query):

- a local JSONL, one file a day, `<kb_log_dir>/<YYYY-MM-DD>.jsonl` (default
  `<home>/logs/<project>-kb/`), always written: the collector does not take kb records yet
  (its ingest knows only projects with a feature spec and v2 tensors, and answers 422 to
  `<project>-kb`), so this file is the record `castml lineage` and monitoring can read;
- with `CASTML_LOGGER_URL` set, the same pair as KServe-logger CloudEvents (one `ce-id`,
  `ce-component: knowledge`) through the predictor's sender (`castml.cloudevent_sender`);
  what the collector refuses shows on `/metrics` as `castml_logger_events_rejected_total`.
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
            source_ids = [s.get("id") for s in answer.get("sources", [])]
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
                "source_ids": source_ids,
                "documents": [s.get("document") for s in answer.get("sources", [])],
            }
            encoded = orjson.dumps(line) + b"\n"
            path = self.directory / f"{now.date().isoformat()}.jsonl"
            with self._lock:
                self.directory.mkdir(parents=True, exist_ok=True)
                with path.open("ab") as out:
                    out.write(encoded)
            if self.sender is not None:
                self.sender.emit_request(request_id, orjson.dumps({"id": request_id, **request}))
                self.sender.emit_response(
                    request_id,
                    orjson.dumps(
                        {
                            "model_name": model_name,
                            "model_version": version,
                            "id": request_id,
                            "no_answer": no_answer,
                            "source_ids": source_ids,
                            **answer,
                        }
                    ),
                )
        except Exception:  # the answer is already made; a log fault must not fail it
            log.exception("knowledge log: query %s not logged", request_id)

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
