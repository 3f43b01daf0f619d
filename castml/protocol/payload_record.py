"""The payload-log record: one logged half of an inference, or one delayed label.

The collector builds these at ingest (`monitoring.event_ingest`, `monitoring.feedback_ingest`),
keeps them in its write-ahead log until Parquet holds them, and flattens them into rows
(`monitoring.parquet_rows`). Their compact on-disk form lives only in `encode`/`decode`.

Names that become folders (`logs/<project>/<version>/...`) are checked here against strict
patterns, so a name that came from a request can never be a path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from castml.errors import CastmlError

# A project is a spec name (castml.spec.ProjectSpec.name); a version is what MLflow numbers.
# Both become folder names: no '/', no '.', no leading '-' or '_', bounded length.
PROJECT_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}\Z")
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
# Folders beside the version folders: a version named so would mix its rows into them.
RESERVED_GROUPS = frozenset({"feedback", "orphans", "observations"})
UNKNOWN_VERSION = "unknown"
# Bounds of what a Parquet millisecond timestamp and an int64 label column hold; epoch
# seconds up to the end of year 9999 (what `datetime` can show).
MAX_EPOCH_S = 253_402_300_799.0
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class BadNameError(CastmlError):
    """A project or model version that is not a plain name (it would become a path)."""

    status_code = 400


def check_project(name: Any) -> str:
    if not isinstance(name, str) or not PROJECT_PATTERN.match(name):
        raise BadNameError(
            f"project {str(name)[:80]!r} is not a project name "
            "(lower-case letters, digits, '-' and '_', starting with a letter)"
        )
    return name


def check_version(version: Any) -> str:
    if (
        not isinstance(version, str)
        or not VERSION_PATTERN.match(version)
        or version in RESERVED_GROUPS
    ):
        raise BadNameError(
            f"model_version {str(version)[:80]!r} is not a version name "
            "(letters, digits, '-' and '_', at most 64)"
        )
    return version


@dataclass(frozen=True)
class LoggedFeatures:
    """How a project's features are logged: their order; which hold text (categorical and
    datetime values, kept as the client sent them, so drift compares categories and a
    retrain reads raw values); whether a value may be missing (null), as a typed spec's
    imputed features allow."""

    names: tuple[str, ...]
    text: frozenset[str] = frozenset()
    nullable: bool = False


# A logged feature value: a number, text (a categorical or datetime feature), or missing.
LoggedValue = float | str | None


@dataclass(slots=True)
class RequestHalf:
    """A logged inference request: its rows `[N][F]` in the spec's feature order."""

    event_id: str
    project: str
    received_at: float
    rows: list[list[LoggedValue]]
    extensions: dict[str, str] = field(default_factory=dict)
    # Older collectors scoped a transformer's halves by component ("transformer:"); such
    # records may still be replayed from a WAL and must keep their keys. New ones: "".
    scope: str = ""

    @property
    def key(self) -> str:
        """Dedupe key: one per logged half."""
        return f"{self.scope}request:{self.event_id}"

    @property
    def pair(self) -> str:
        """What joins it with its response."""
        return f"{self.scope}{self.event_id}"


@dataclass(slots=True)
class ResponseHalf:
    """A logged inference response: one score (and maybe a label) per instance."""

    event_id: str
    project: str
    received_at: float
    scores: list[float]
    labels: list[int]
    model_name: str | None
    model_version: str | None
    extensions: dict[str, str] = field(default_factory=dict)
    scope: str = ""  # see RequestHalf.scope

    @property
    def key(self) -> str:
        return f"{self.scope}response:{self.event_id}"

    @property
    def pair(self) -> str:
        return f"{self.scope}{self.event_id}"


@dataclass(slots=True)
class Feedback:
    """A delayed ground-truth label for a request id."""

    request_id: str
    project: str
    label: float
    observed_at: float | None
    received_at: float
    known_request: bool
    key: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            self.key = f"feedback:{self.request_id}:{self.label}:{self.observed_at}"


PayloadRecord = RequestHalf | ResponseHalf | Feedback
Half = RequestHalf | ResponseHalf


class UndecodableRecordError(CastmlError):
    """A WAL payload that is not a payload-log record (written by a bug, or damaged)."""


def encode(record: PayloadRecord) -> bytes:
    """The compact WAL form (one-letter keys; `decode` reads every form written so far)."""
    if isinstance(record, RequestHalf):
        body: dict[str, Any] = {
            "k": "request",
            "key": record.key,
            "id": record.event_id,
            "p": record.project,
            "rt": record.received_at,
            "ext": record.extensions,
            "rows": record.rows,
        }
    elif isinstance(record, ResponseHalf):
        body = {
            "k": "response",
            "key": record.key,
            "id": record.event_id,
            "p": record.project,
            "rt": record.received_at,
            "ext": record.extensions,
            "prob": record.scores,
            "label": record.labels,
            "mv": record.model_version,
            "mn": record.model_name,
        }
    else:
        body = {
            "k": "feedback",
            "key": record.key,
            "p": record.project,
            "rid": record.request_id,
            "label": record.label,
            "obs": record.observed_at,
            "rt": record.received_at,
            "known": record.known_request,
        }
    if isinstance(record, RequestHalf | ResponseHalf) and record.scope:
        body["j"] = record.pair
    return orjson.dumps(body)


def _scope(raw: dict[str, Any], kind: str) -> str:
    """The component scope of a record an older collector wrote, from its key."""
    key = str(raw.get("key", ""))
    return key[: -len(f"{kind}:{raw['id']}")] if raw.get("j") else ""


def _epoch(value: Any) -> float:
    epoch = float(value)
    if not 0.0 <= epoch <= MAX_EPOCH_S:
        raise ValueError(f"time {value!r} out of range")
    return epoch


def decode(payload: bytes) -> PayloadRecord:
    """A record from its WAL form; raises `UndecodableRecordError` for anything else."""
    try:
        raw = orjson.loads(payload)
        kind = raw["k"]
        if kind == "request":
            return RequestHalf(
                str(raw["id"]),
                str(raw["p"]),
                _epoch(raw["rt"]),
                raw["rows"],
                raw.get("ext") or {},
                _scope(raw, kind),
            )
        if kind == "response":
            return ResponseHalf(
                str(raw["id"]),
                str(raw["p"]),
                _epoch(raw["rt"]),
                raw["prob"],
                raw.get("label") or [],
                raw.get("mn"),
                raw.get("mv"),
                raw.get("ext") or {},
                _scope(raw, kind),
            )
        if kind == "feedback":
            return Feedback(
                str(raw["rid"]),
                str(raw["p"]),
                float(raw["label"]),
                None if raw.get("obs") is None else float(raw["obs"]),
                _epoch(raw["rt"]),
                bool(raw["known"]),
                str(raw.get("key") or ""),
            )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UndecodableRecordError(f"not a payload-log record: {exc!r}") from None
    raise UndecodableRecordError(f"not a payload-log record: kind {kind!r}")
