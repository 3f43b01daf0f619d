"""Held kb query-log halves -> Parquet: one row per query, its source ids in list columns.

Written under `logs/<project>-kb/<version | orphans>/date=YYYY-MM-DD/` like the predictor's
log; an orphan (a query whose answer never came, or the other way round) has the missing
half's columns null. `monitoring.lineage` reads these files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from castml.protocol.kb_record import KbAnswer, KbQuery
from monitoring.parquet_sink import META_COLUMNS

if TYPE_CHECKING:
    from monitoring.collector import Item

_TS = pa.timestamp("ms", tz="UTC")
KB_SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("query", pa.string()),
        pa.field("language", pa.string()),  # the answer's (the one used), else the one asked
        pa.field("prediction_class", pa.string()),
        pa.field("prediction_probability", pa.float32()),
        pa.field("no_answer", pa.bool_()),
        pa.field("source_ids", pa.list_(pa.string())),
        pa.field("documents", pa.list_(pa.string())),
        pa.field("top_relevance", pa.float32()),
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("request_time", _TS),
        pa.field("response_time", _TS),
        pa.field("logged_at", _TS),
    ]
    + [pa.field(name, pa.string()) for name in META_COLUMNS]
)
_EXTENSIONS = ("inferenceservicename", "namespace", "endpoint", "component")


def _ms(epoch_s: float) -> int:
    return int(epoch_s * 1000)


def _halves(item: Item) -> tuple[KbQuery | None, KbAnswer | None]:
    records = [h.record for h in (item if isinstance(item, tuple) else (item,))]
    query = next((r for r in records if isinstance(r, KbQuery)), None)
    answer = next((r for r in records if isinstance(r, KbAnswer)), None)
    return query, answer


def kb_columns(items: list[Item]) -> dict[str, list[Any]]:
    """Joined (query, answer) pairs and orphan halves, one row each."""
    columns: dict[str, list[Any]] = {name: [] for name in KB_SCHEMA.names}
    for item in items:
        query, answer = _halves(item)
        first = query or answer
        assert first is not None, "a kb item holds a query or an answer"
        ext = {
            **(answer.extensions if answer else {}),
            **(query.extensions if query else {}),
        }
        row = {
            "request_id": first.event_id,
            "query": query.query if query else None,
            "language": (answer.language if answer else None)
            or (query.language if query else None),
            "prediction_class": query.prediction_class if query else None,
            "prediction_probability": query.prediction_probability if query else None,
            "no_answer": answer.no_answer if answer else None,
            "source_ids": answer.source_ids if answer else None,
            "documents": answer.documents if answer else None,
            "top_relevance": answer.top_relevance if answer else None,
            "model_name": answer.model_name if answer else None,
            "model_version": answer.model_version if answer else None,
            "request_time": _ms(query.received_at) if query else None,
            "response_time": _ms(answer.received_at) if answer else None,
            "logged_at": _ms(first.received_at),
        }
        row |= {
            column: ext.get(extension)
            for column, extension in zip(META_COLUMNS, _EXTENSIONS, strict=True)
        }
        for name, values in columns.items():
            values.append(row[name])
    return columns
