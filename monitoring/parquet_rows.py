"""Held payload-log records -> Parquet columns: one row per instance of a request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from castml.protocol.payload_record import Feedback, RequestHalf, ResponseHalf
from monitoring.parquet_sink import META_COLUMNS

if TYPE_CHECKING:
    from monitoring.collector import Held, Item

_EXTENSION_OF = dict(
    zip(META_COLUMNS, ("inferenceservicename", "namespace", "endpoint", "component"), strict=True)
)
# Columns after the features, in the schema's order (see `inference_schema`).
_OUTPUT_COLUMNS = (
    "probability",
    "label",
    "model_name",
    "model_version",
    "request_time",
    "response_time",
    "logged_at",
    *_EXTENSION_OF,
)
# What every instance of one request shares, in the order `inference_columns` holds it.
_SHARED_COLUMNS = (
    "request_id",
    "model_name",
    "model_version",
    "request_time",
    "response_time",
    "logged_at",
    *_EXTENSION_OF,
)
_NO_EXTENSIONS: dict[str, str] = {}


def _ms(epoch_s: float | None) -> int | None:
    return None if epoch_s is None else int(epoch_s * 1000)


def _halves(item: Item) -> tuple[RequestHalf | None, ResponseHalf | None]:
    if isinstance(item, tuple):
        request, response = item[0].record, item[1].record
    elif isinstance(item.record, RequestHalf):
        request, response = item.record, None
    else:
        request, response = None, item.record
    assert request is None or isinstance(request, RequestHalf)
    assert response is None or isinstance(response, ResponseHalf)
    return request, response


def inference_columns(items: list[Item], features: list[str]) -> dict[str, list[Any]]:
    """Joined (request, response) pairs and orphan halves, flattened per instance.

    Built as one tuple per instance and transposed once at C speed: an append per cell
    was the largest part of a flush (profiled with `make bench`).
    """
    table: list[tuple[Any, ...]] = []
    no_row = (None,) * len(features)
    for item in items:
        request, response = _halves(item)
        rows = request.rows if request else []
        prob = response.scores if response else []
        labels = response.labels if response else []
        first = request or response
        assert first is not None
        ext = {
            **(response.extensions if response else _NO_EXTENSIONS),
            **(request.extensions if request else _NO_EXTENSIONS),
        }
        shared = (
            first.event_id,
            response.model_name if response else None,
            response.model_version if response else None,
            _ms(request.received_at) if request else None,
            _ms(response.received_at) if response else None,
            _ms(first.received_at),
            *[ext.get(extension) for extension in _EXTENSION_OF.values()],
        )
        for i in range(max(len(rows), len(prob))):
            table.append(
                (
                    *shared,
                    i,
                    prob[i] if i < len(prob) else None,
                    labels[i] if i < len(labels) else None,
                    *(rows[i] if i < len(rows) else no_row),
                )
            )
    names = (*_SHARED_COLUMNS, "row", "probability", "label", *features)
    columns = zip(*table, strict=True) if table else [()] * len(names)
    by_name = {name: list(values) for name, values in zip(names, columns, strict=True)}
    return {name: by_name[name] for name in ("request_id", "row", *features, *_OUTPUT_COLUMNS)}


def feedback_columns(items: list[Held]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {
        "request_id": [],
        "label": [],
        "observed_at": [],
        "received_at": [],
        "known_request": [],
    }
    for held in items:
        record = held.record
        assert isinstance(record, Feedback)
        out["request_id"].append(record.request_id)
        out["label"].append(record.label)
        out["observed_at"].append(_ms(record.observed_at))
        out["received_at"].append(_ms(record.received_at))
        out["known_request"].append(record.known_request)
    return out
