"""KServe logger CloudEvents -> payload-log records, validated before the collector acks.

The logger posts each request and each response as a CloudEvent that share one `ce-id`,
in binary mode (attributes in `ce-*` headers, data in the body) or in structured mode
(one `application/cloudevents+json` document). Both go through one typed envelope
(`CloudEventEnvelope`), and the payload is flattened here, at ingest: whatever the writer
could not turn into Parquet later (an unknown project, a name that is a path, a label
outside int64) is refused now with a 4xx that names it, while the sender still holds the
event (issue 10 §1, §3, §4).

Payloads are logged at the predictor (v2 bodies: DESIGN.md §4) and at the knowledge role:
an event for `<project>-kb`, where `<project>` is served here, is a query or an answer
(`monitoring.kb_ingest`), logged to its own Parquet dataset.

Status: 400 for an event that is not a well-formed CloudEvent or v2 body (names, shapes,
types, ranges; for a kb event, each field its row needs), 422 for a well-formed one that
does not fit the project (width, missing features, non-numeric values), 422 for a project
the collector does not serve (and for `<project>-kb` of such a project).
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal, cast

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from castml.errors import CastmlError
from castml.protocol.cloudevents import EXTENSIONS, REQUEST_TYPE, RESPONSE_TYPE, STRUCTURED_MEDIA
from castml.protocol.kb_record import KbHalf, kb_base
from castml.protocol.payload_record import (
    INT64_MAX,
    INT64_MIN,
    Half,
    LoggedFeatures,
    LoggedValue,
    RequestHalf,
    ResponseHalf,
    check_project,
    check_version,
)
from castml.protocol.v2_tensors import NUMERIC
from castml.web.errors import BadRequestError, FieldProblem
from monitoring import kb_ingest

FeaturesOf = Callable[[str], LoggedFeatures]
# v2 datatypes a logged tensor may declare: the numeric ones, and the two non-numeric
# ones whose values are then refused as non-numeric (422), not as an unknown type (400).
DATATYPES = frozenset(NUMERIC) | {"BYTES", "BOOL"}


class MalformedEventError(BadRequestError):
    """A CloudEvent lacks a required attribute, or its payload is not a well-formed v2 body."""

    def __init__(self, message: str, problems: list[FieldProblem] | None = None) -> None:
        self.problems = problems or []  # each named in the answer's `details`
        super().__init__(message)


class UnusablePayloadError(CastmlError):
    """A well-formed CloudEvent whose inference payload cannot be flattened to rows."""

    status_code = 422


class UnknownProjectError(CastmlError):
    """A project this collector does not serve (no spec by that name)."""

    status_code = 422


NonEmpty = Annotated[StrictStr, Field(min_length=1, max_length=512)]
# CloudEvents extension attributes may be strings, integers or booleans.
Extension = StrictStr | int | bool | None


class CloudEventEnvelope(BaseModel):
    """The CloudEvents 1.0 attributes the collector reads; unknown extensions are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    specversion: NonEmpty
    id: NonEmpty
    source: NonEmpty
    type: Literal[
        "org.kubeflow.serving.inference.request", "org.kubeflow.serving.inference.response"
    ]
    time: StrictStr | None = None
    inferenceservicename: Extension = None
    namespace: Extension = None
    endpoint: Extension = None
    component: Extension = None

    def extensions(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in EXTENSIONS:
            value = getattr(self, name)
            if value is not None and value != "":
                out[name] = str(value)
        return out


assert {REQUEST_TYPE, RESPONSE_TYPE} == set(
    CloudEventEnvelope.model_fields["type"].annotation.__args__  # type: ignore[union-attr]
)


def _invalid(exc: ValidationError, prefix: str) -> MalformedEventError:
    problems = [
        FieldProblem(prefix + ".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()
    ]
    listed = "; ".join(f"{p.field}: {p.problem}" for p in problems[:10])
    return MalformedEventError(f"not a CloudEvent the collector takes: {listed}", problems)


def _json(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedEventError(f"{what} is not JSON: {exc}") from None


def _base64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise MalformedEventError("data_base64 must be a string of base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedEventError("data_base64 is not valid base64") from None


def parse(headers: dict[str, str], body: bytes) -> tuple[CloudEventEnvelope, Any]:
    """(envelope, data) of a CloudEvent in binary or structured mode.

    `headers` must have lower-case names. Required attributes (CloudEvents 1.0):
    specversion, id, source, type.
    """
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == STRUCTURED_MEDIA:
        document = _json(body, "body")
        if not isinstance(document, dict):
            raise MalformedEventError("a structured CloudEvent must be a JSON object")
        attrs = document
        if "data_base64" in document:
            data = _json(_base64(document["data_base64"]), "data_base64")
        else:
            data = document.get("data")
        prefix = ""
    else:
        attrs = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
        data = _json(body, "body") if body else None
        prefix = "ce-"
    try:
        envelope = CloudEventEnvelope.model_validate(attrs)
    except ValidationError as exc:
        raise _invalid(exc, prefix) from None
    return envelope, data


# --- v2 tensors --------------------------------------------------------------------
# Flattened in pure Python, not through castml.protocol.v2_tensors: the logger sends one
# event per inference, mostly of one row, and for a [1, 30] FP32 tensor numpy's
# asarray+astype cost 25 us against 14 us here (measured for issue 9; numpy wins from
# about 4 rows). The rows then go to orjson and pyarrow as lists either way.


def _tensor(spec: Any, where: str) -> tuple[list[int], list[Any]]:
    if not isinstance(spec, dict):
        raise MalformedEventError(f"{where}: a v2 tensor must be an object")
    name = spec.get("name")
    if name is not None and not isinstance(name, str):
        raise MalformedEventError(f"{where}: a tensor 'name' must be a string")
    if "data" not in spec or "shape" not in spec:
        raise UnusablePayloadError(f"{where}: a v2 tensor needs 'shape' and 'data'")
    shape = spec["shape"]
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise MalformedEventError(f"{where}: 'shape' must be a list of non-negative integers")
    datatype = spec.get("datatype")
    if datatype is not None and (not isinstance(datatype, str) or datatype not in DATATYPES):
        raise MalformedEventError(f"{where}: datatype {str(datatype)[:40]!r} is not a v2 datatype")
    data = spec["data"]
    if not isinstance(data, list):
        raise MalformedEventError(f"{where}: 'data' must be a list")
    flat: list[Any]
    if list not in set(map(type, data)):
        flat = data  # already flat, the usual layout: checked at C speed
    else:
        # Flatten nested lists without recursion (the logger may send either layout).
        flat, stack = [], [data]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(reversed(item))
            else:
                flat.append(item)
    if math.prod(shape) != len(flat):
        raise UnusablePayloadError(f"{where}: shape {shape} does not match {len(flat)} values")
    return shape, flat


_NUMBERS = frozenset({float, int})


def _floats(values: list[Any], where: str) -> list[float]:
    # Exact types, so bool (an int subclass) falls to the loop below and is refused.
    if set(map(type, values)) <= _NUMBERS:
        try:
            return list(map(float, values))
        except OverflowError:
            pass  # an integer beyond float: named below
    out: list[float] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise UnusablePayloadError(f"{where}: non-numeric value {str(v)[:40]!r}")
        try:
            out.append(float(v))
        except OverflowError:
            raise MalformedEventError(f"{where}: {v} is out of range for a number") from None
    return out


# A typed project's values (castml.protocol.payload_record.LoggedFeatures): text stays text
# (capped, as a category or a timestamp never needs more), null is a missing value, and a
# BOOL tensor's true/false is logged as 1/0.
MAX_TEXT = 256


def _texts(values: list[Any], where: str) -> list[LoggedValue]:
    for v in values:
        if v is not None and not isinstance(v, str):
            raise UnusablePayloadError(f"{where}: expected text (or null), got {str(v)[:40]!r}")
        if v is not None and len(v) > MAX_TEXT:
            raise UnusablePayloadError(f"{where}: a value is longer than {MAX_TEXT} characters")
    return values


def _nullable_floats(values: list[Any], where: str) -> list[LoggedValue]:
    present = [float(v) if isinstance(v, bool) else v for v in values if v is not None]
    numbers = cast(list[LoggedValue], _floats(present, where))
    if len(present) == len(values):
        return numbers
    it = iter(numbers)
    return [None if v is None else next(it) for v in values]


def _column(values: list[Any], name: str, features: LoggedFeatures) -> list[LoggedValue]:
    if name in features.text:
        return _texts(values, name)
    if features.nullable:
        return _nullable_floats(values, name)
    return cast(list[LoggedValue], _floats(values, name))  # no copy on the hot path


def _labels(values: list[float]) -> list[int]:
    """Class labels: whole numbers inside int64, the type of the Parquet column."""
    if not all(INT64_MIN <= v < INT64_MAX and v == int(v) for v in values if math.isfinite(v)):
        raise MalformedEventError("label: each value must be a whole number inside int64")
    if not all(map(math.isfinite, values)):
        raise MalformedEventError("label: each value must be a finite whole number")
    return [int(v) for v in values]


def _named(tensors: list[Any], where: str) -> dict[str, Any]:
    by_name: dict[str, Any] = {}
    for i, tensor in enumerate(tensors):
        if not isinstance(tensor, dict):
            raise MalformedEventError(f"{where}[{i}]: a v2 tensor must be an object")
        name = tensor.get("name")
        if name is not None and not isinstance(name, str):
            raise MalformedEventError(f"{where}[{i}]: a tensor 'name' must be a string")
        by_name[name or ""] = tensor
    return by_name


def request_rows(data: Any, features: LoggedFeatures) -> list[list[LoggedValue]]:
    """Rows [N][F] in spec order from a v2 request: one [N, F] tensor or one per feature."""
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), list) or not data["inputs"]:
        raise UnusablePayloadError("request has no v2 'inputs'")
    inputs = data["inputs"]
    names = features.names
    width = len(names)
    if len(inputs) == 1:
        shape, flat = _tensor(inputs[0], "inputs[0]")
        if len(shape) != 2 or shape[1] != width:
            raise UnusablePayloadError(f"inputs[0]: expected shape [N, {width}], got {shape}")
        if features.text or features.nullable:  # typed: each column by its own kind
            by_column = [_column(flat[j::width], n, features) for j, n in enumerate(names)]
            return [list(r) for r in zip(*by_column, strict=True)]
        values = cast(list[LoggedValue], _floats(flat, "inputs[0]"))
        return [values[i * width : (i + 1) * width] for i in range(shape[0])]
    by_name = _named(inputs, "inputs")
    missing = [f for f in names if f not in by_name]
    if missing:
        raise UnusablePayloadError(f"request lacks feature tensor(s): {', '.join(missing[:5])}")
    columns = [_column(_tensor(by_name[f], f)[1], f, features) for f in names]
    n = len(columns[0])
    if any(len(c) != n for c in columns):
        raise UnusablePayloadError("feature tensors differ in length")
    return [list(r) for r in zip(*columns, strict=True)]


Outputs = tuple[list[float], list[int], str | None, str | None]


def _optional_name(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedEventError(f"{field} must be a string")
    return str(value)


def response_outputs(data: Any) -> Outputs:
    """(score, label, model_name, model_version) of a v2 response.

    The score is `probability` for classification and `prediction` for regression
    projects; it lands in the `probability` column either way (the model's score,
    compared with the reference sample's `score`).
    """
    if not isinstance(data, dict) or not isinstance(data.get("outputs"), list):
        raise UnusablePayloadError("response has no v2 'outputs'")
    by_name = _named(data["outputs"], "outputs")
    score = next((n for n in ("probability", "prediction") if n in by_name), None)
    if score is None:
        raise UnusablePayloadError("response lacks a 'probability' or 'prediction' output")
    probability = _floats(_tensor(by_name[score], score)[1], score)
    label: list[int] = []
    if "label" in by_name:
        label = _labels(_floats(_tensor(by_name["label"], "label")[1], "label"))
        if len(label) != len(probability):
            raise UnusablePayloadError("'label' and 'probability' differ in length")
    version = _optional_name(data.get("model_version"), "model_version")
    if version is not None:
        check_version(version)
    return probability, label, _optional_name(data.get("model_name"), "model_name"), version


def known_features(project: str, features_of: FeaturesOf) -> LoggedFeatures:
    """The feature order of a project this collector serves; refuses any other name."""
    check_project(project)
    try:
        return features_of(project)
    except CastmlError:
        raise UnknownProjectError(
            f"project '{project}' is not one this collector serves (no spec by that name)"
        ) from None


def _kb_record(
    envelope: CloudEventEnvelope, data: Any, project: str, base: str, features_of: FeaturesOf
) -> KbHalf:
    """A knowledge role's half (`monitoring.kb_ingest`): its project is `<base>-kb`, and
    `base` must be a project this collector serves."""
    check_project(project)
    known_features(base, features_of)
    if envelope.type == REQUEST_TYPE:
        return kb_ingest.kb_query(envelope.id, project, data, envelope.extensions())
    return kb_ingest.kb_answer(envelope.id, project, data, envelope.extensions())


def to_record(envelope: CloudEventEnvelope, data: Any, features_of: FeaturesOf) -> Half | KbHalf:
    """The log record of one half, or a 4xx naming why it cannot be logged."""
    extensions = envelope.extensions()
    named = extensions.get("inferenceservicename")
    if named is None and envelope.type == RESPONSE_TYPE and isinstance(data, dict):
        model_name = data.get("model_name")
        named = model_name if isinstance(model_name, str) else None
    base = kb_base(named) if named else None
    if base is not None and named is not None:  # a knowledge base's query log
        return _kb_record(envelope, data, named, base, features_of)
    if envelope.type == REQUEST_TYPE:
        project = extensions.get("inferenceservicename")
        if not project:
            raise MalformedEventError("request event lacks the 'inferenceservicename' extension")
        rows = request_rows(data, known_features(project, features_of))
        return RequestHalf(envelope.id, project, time.time(), rows, extensions)
    scores, labels, name, version = response_outputs(data)
    project = extensions.get("inferenceservicename") or name
    if not project:
        raise MalformedEventError(
            "response event names no project (no inferenceservicename extension, no model_name)"
        )
    known_features(project, features_of)  # the writer needs its spec: refuse it now, not then
    return ResponseHalf(
        envelope.id, project, time.time(), scores, labels, name, version, extensions
    )


def decode(headers: dict[str, str], body: bytes, features_of: FeaturesOf) -> Half | KbHalf:
    """Headers (lower-case names) and body of one logged CloudEvent -> its record."""
    envelope, data = parse(headers, body)
    return to_record(envelope, data, features_of)
