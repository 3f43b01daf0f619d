"""Held WAL records -> Parquet columns: one row per instance of a request."""

from __future__ import annotations

from typing import Any

from monitoring.parquet_sink import META_COLUMNS

_EXTENSION_OF = dict(
    zip(META_COLUMNS, ("inferenceservicename", "namespace", "endpoint", "component"), strict=True)
)


def _ms(epoch_s: float | None) -> int | None:
    return None if epoch_s is None else int(epoch_s * 1000)


def inference_columns(items: list[Any], features: list[str]) -> dict[str, list[Any]]:
    """Joined (request, response) pairs and orphan halves, flattened per instance."""
    out: dict[str, list[Any]] = {name: [] for name in ["request_id", "row", *features]}
    for name in (
        "probability",
        "label",
        "model_name",
        "model_version",
        "request_time",
        "response_time",
        "logged_at",
        *META_COLUMNS,
    ):
        out[name] = []
    width = len(features)
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
        n = max(len(rows), len(prob))
        first = request or response
        assert first is not None
        ext = {**(response or {}).get("ext", {}), **(request or {}).get("ext", {})}
        for i in range(n):
            out["request_id"].append(str(first["id"]))
            out["row"].append(i)
            values = rows[i] if i < len(rows) else [None] * width
            for name, value in zip(features, values, strict=True):
                out[name].append(value)
            out["probability"].append(prob[i] if i < len(prob) else None)
            out["label"].append(labels[i] if i < len(labels) else None)
            out["model_name"].append(response.get("mn") if response else None)
            out["model_version"].append(response.get("mv") if response else None)
            out["request_time"].append(_ms(request["rt"]) if request else None)
            out["response_time"].append(_ms(response["rt"]) if response else None)
            out["logged_at"].append(_ms(first["rt"]))
            for column, extension in _EXTENSION_OF.items():
                out[column].append(ext.get(extension))
    return out


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
