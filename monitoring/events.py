"""KServe logger CloudEvents -> typed events with flattened payloads.

The logger posts each request and each response as a CloudEvent that share one
`ce-id`, in binary mode (attributes in `ce-*` headers, data in the body) or in
structured mode (one `application/cloudevents+json` document). Payloads are
flattened here, at ingest, so that a body that cannot become rows is refused with
a 4xx while the sender can still see it, instead of failing later in a writer.

Two components log: the predictor (v2 bodies) and the transformer (its public
bodies: `{"features": ...}` / `{"instances": [...]}` or v2 named inputs in, the
per-instance `prediction` objects, or v2 outputs, back). Both flatten to the same
columns; the `component` extension keeps them apart downstream.
"""

from __future__ import annotations

import base64
import functools
import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from castml.errors import CastmlError
from castml.protocol.cloudevents import REQUEST_TYPE, RESPONSE_TYPE, STRUCTURED_MEDIA
from castml.spec import load_spec

EVENT_TYPES = {REQUEST_TYPE: "request", RESPONSE_TYPE: "response"}
from castml.protocol.cloudevents import EXTENSIONS  # noqa: E402


class MalformedEventError(CastmlError):
    """A CloudEvent lacks a required attribute or carries an unusable payload."""

    status_code = 400


class UnusablePayloadError(CastmlError):
    """A well-formed CloudEvent whose inference payload cannot be flattened to rows."""

    status_code = 422


@dataclass(frozen=True)
class InferenceEvent:
    """One request or response half; `rows`/`outputs` hold the flattened payload."""

    kind: str  # "request" | "response"
    event_id: str
    source: str
    time: str | None
    extensions: dict[str, str]
    rows: list[list[float]] = field(default_factory=list)  # request: [N][F] in spec order
    probability: list[float] = field(default_factory=list)  # response
    label: list[int] = field(default_factory=list)  # response
    model_name: str | None = None
    model_version: str | None = None

    @property
    def project(self) -> str | None:
        return self.extensions.get("inferenceservicename") or self.model_name


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedEventError(f"body is not JSON: {exc}") from exc


def parse(headers: dict[str, str], body: bytes) -> tuple[dict[str, Any], Any]:
    """(attributes, data) of a CloudEvent in binary or structured mode.

    `headers` must have lower-case keys. Required attributes (CloudEvents 1.0):
    specversion, id, source, type.
    """
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == STRUCTURED_MEDIA:
        document = _json(body)
        if not isinstance(document, dict):
            raise MalformedEventError("a structured CloudEvent must be a JSON object")
        attrs = {k: v for k, v in document.items() if k not in ("data", "data_base64")}
        if "data_base64" in document:
            data = _json(base64.b64decode(document["data_base64"]))
        else:
            data = document.get("data")
    else:
        attrs = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
        data = _json(body) if body else None
    missing = [a for a in ("specversion", "id", "source", "type") if not attrs.get(a)]
    if missing:
        raise MalformedEventError(f"CloudEvent lacks required attribute(s): {', '.join(missing)}")
    if attrs["type"] not in EVENT_TYPES:
        raise MalformedEventError(
            f"unsupported ce-type '{attrs['type']}' (expected {REQUEST_TYPE} or {RESPONSE_TYPE})"
        )
    return attrs, data


def _tensor(spec: Any, where: str) -> tuple[list[int], list[Any]]:
    if not isinstance(spec, dict) or "data" not in spec or "shape" not in spec:
        raise UnusablePayloadError(f"{where}: a v2 tensor needs 'shape' and 'data'")
    shape = [int(s) for s in spec["shape"]]
    data = spec["data"]
    flat: list[Any] = []
    if type(data) is list and list not in set(map(type, data)):
        flat = data  # already flat, the usual layout: checked at C speed
    else:
        # Flatten nested lists without recursion (the logger may send either layout).
        stack = [data]
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
        return list(map(float, values))
    out: list[float] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise UnusablePayloadError(f"{where}: non-numeric value {v!r}")
        out.append(float(v))
    return out


def request_rows(data: Any, features: list[str]) -> list[list[float]]:
    """Rows [N][F] in spec order from a v2 request or a named-JSON transformer request."""
    if isinstance(data, dict) and isinstance(data.get("features"), dict | list):
        return [_record_row(data["features"], features, "features")]
    if isinstance(data, dict) and isinstance(data.get("instances"), list):
        return [
            _record_row(inst, features, f"instances[{i}]")
            for i, inst in enumerate(data["instances"])
        ]
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), list) or not data["inputs"]:
        raise UnusablePayloadError("request has no v2 'inputs' (nor 'features'/'instances')")
    inputs = data["inputs"]
    width = len(features)
    if len(inputs) == 1:
        shape, flat = _tensor(inputs[0], "inputs[0]")
        if len(shape) != 2 or shape[1] != width:
            raise UnusablePayloadError(f"inputs[0]: expected shape [N, {width}], got {shape}")
        values = _floats(flat, "inputs[0]")
        return [values[i * width : (i + 1) * width] for i in range(shape[0])]
    by_name = {t.get("name"): t for t in inputs if isinstance(t, dict)}
    missing = [f for f in features if f not in by_name]
    if missing:
        raise UnusablePayloadError(f"request lacks feature tensor(s): {', '.join(missing[:5])}")
    columns = [_floats(_tensor(by_name[f], f)[1], f) for f in features]
    n = len(columns[0])
    if any(len(c) != n for c in columns):
        raise UnusablePayloadError("feature tensors differ in length")
    return [list(r) for r in zip(*columns, strict=True)]


def _record_row(values: Any, features: list[str], where: str) -> list[float]:
    """One transformer record: an object keyed by feature, or a list in spec order."""
    if isinstance(values, list):
        if len(values) != len(features):
            raise UnusablePayloadError(
                f"{where}: a list record needs {len(features)} values in spec order, "
                f"got {len(values)}"
            )
        return _floats(values, where)
    if not isinstance(values, dict):
        raise UnusablePayloadError(f"{where}: expected an object of named features")
    missing = [f for f in features if f not in values]
    if missing:
        raise UnusablePayloadError(f"{where}: missing feature(s) {', '.join(missing[:5])}")
    return _floats([values[f] for f in features], where)


Outputs = tuple[list[float], list[int], str | None, str | None]


@functools.cache
def spec_classes(project: str) -> tuple[str, ...]:
    """The class names a transformer answers for `project` (its spec's, in label order)."""
    try:
        names = load_spec(project).class_names
    except CastmlError as exc:
        raise UnusablePayloadError(f"no project spec '{project}' to read classes from") from exc
    return tuple(names or ("negative", "positive"))  # the transformer's own fallback


def response_outputs(data: Any, project: str | None = None) -> Outputs:
    """(score, label, model_name, model_version) of a v2 or a transformer response.

    The score is `probability` for classification and `prediction` for regression
    projects; it lands in the `probability` column either way (the model's score,
    compared with the reference sample's `score`).
    """
    if isinstance(data, dict) and ("prediction" in data or "predictions" in data):
        return transformer_outputs(data, project)
    if not isinstance(data, dict) or not isinstance(data.get("outputs"), list):
        raise UnusablePayloadError(
            "response has no v2 'outputs' (nor a transformer's 'prediction'/'predictions')"
        )
    by_name = {t.get("name"): t for t in data["outputs"] if isinstance(t, dict)}
    score = next((n for n in ("probability", "prediction") if n in by_name), None)
    if score is None:
        raise UnusablePayloadError("response lacks a 'probability' or 'prediction' output")
    probability = _floats(_tensor(by_name[score], score)[1], score)
    label: list[int] = []
    if "label" in by_name:
        label = [int(v) for v in _floats(_tensor(by_name["label"], "label")[1], "label")]
        if len(label) != len(probability):
            raise UnusablePayloadError("'label' and 'probability' differ in length")
    version = data.get("model_version")
    name = data.get("model_name")
    return probability, label, str(name) if name else None, str(version) if version else None


def transformer_outputs(data: dict[str, Any], project: str | None) -> Outputs:
    """The transformer's answer: one `prediction` object, or `predictions`, one per instance.

    Each holds `{"class", "probability", "confidence"}` (classification; the label is the
    class's index in the spec's class names) or `{"value"}` (regression). The version
    reads `<project>/<version>`.
    """
    if "predictions" in data:
        objects = data["predictions"]
        if not isinstance(objects, list) or not objects:
            raise UnusablePayloadError("'predictions' must be a non-empty list")
    else:
        objects = [data]
    name, version = _split_version(data.get("model_version"))
    predictions: list[dict[str, Any]] = [
        o["prediction"]
        for o in objects
        if isinstance(o, dict) and isinstance(o.get("prediction"), dict)
    ]
    if len(predictions) != len(objects):
        raise UnusablePayloadError("each transformer answer needs a 'prediction' object")
    if all("value" in p for p in predictions):
        return _floats([p["value"] for p in predictions], "prediction.value"), [], name, version
    score = _floats([p.get("probability") for p in predictions], "prediction.probability")
    classes = spec_classes(project or name or "")
    try:
        label = [classes.index(p.get("class")) for p in predictions]
    except ValueError:
        raise UnusablePayloadError(
            f"prediction.class must be one of {', '.join(classes)}"
        ) from None
    return score, label, name, version


def _split_version(value: Any) -> tuple[str | None, str | None]:
    """`diecast/3` -> ("diecast", "3"); a bare `3` has no name."""
    if not value:
        return None, None
    name, _, version = str(value).rpartition("/")
    return name or None, version or None


def to_event(attrs: dict[str, Any], data: Any, features_of: Any) -> InferenceEvent:
    """Typed event; `features_of(project)` gives a project's feature order (or raises)."""
    kind = EVENT_TYPES[attrs["type"]]
    extensions = {k: str(attrs[k]) for k in EXTENSIONS if attrs.get(k)}
    base: dict[str, Any] = {
        "kind": kind,
        "event_id": str(attrs["id"]),
        "source": str(attrs["source"]),
        "time": str(attrs["time"]) if attrs.get("time") else None,
        "extensions": extensions,
    }
    if kind == "request":
        project = extensions.get("inferenceservicename")
        if not project:
            raise MalformedEventError("request event lacks the 'inferenceservicename' extension")
        return InferenceEvent(**base, rows=request_rows(data, features_of(project)))
    probability, label, name, version = response_outputs(
        data, extensions.get("inferenceservicename")
    )
    return InferenceEvent(
        **base, probability=probability, label=label, model_name=name, model_version=version
    )
