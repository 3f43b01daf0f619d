"""Held WAL records -> Parquet columns: one row per instance of a request."""

from __future__ import annotations

from typing import Any

from monitoring.parquet_sink import META_COLUMNS

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


def _ms(epoch_s: float | None) -> int | None:
    return None if epoch_s is None else int(epoch_s * 1000)


def inference_columns(items: list[Any], features: list[str]) -> dict[str, list[Any]]:
    """Joined (request, response) pairs and orphan halves, flattened per instance.

    Built as one tuple per instance and transposed once at C speed: an append per cell
    was the largest part of a flush (profiled for issue 4).
    """
    table: list[tuple[Any, ...]] = []
    no_row = (None,) * len(features)
    for item in items:
        if isinstance(item, tuple):
            request, response = item[0].record, item[1].record
        elif item.record["k"] == "request":
            request, response = item.record, None
        else:
            request, response = None, item.record
        rows: list[list[float]] = request["rows"] if request else []
        prob: list[float] = response["prob"] if response else []
        labels: list[int] = response.get("label") or [] if response else []
        first = request or response
        assert first is not None
        ext = {**(response or {}).get("ext", {}), **(request or {}).get("ext", {})}
        shared = (
            str(first["id"]),
            response.get("mn") if response else None,
            response.get("mv") if response else None,
            _ms(request["rt"]) if request else None,
            _ms(response["rt"]) if response else None,
            _ms(first["rt"]),
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


def feedback_columns(items: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {
        "request_id": [],
        "label": [],
        "observed_at": [],
        "received_at": [],
        "known_request": [],
    }
    for held in items:
        record = held.record
        out["request_id"].append(record["rid"])
        out["label"].append(record["label"])
        out["observed_at"].append(_ms(record.get("obs")))
        out["received_at"].append(_ms(record["rt"]))
        out["known_request"].append(bool(record["known"]))
    return out
