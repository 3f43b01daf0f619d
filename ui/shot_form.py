"""The Predict tab's form, without Streamlit: fields from the spec, defaults, checks, JSON shots.

Each numeric feature of the spec becomes one text field (a text field, so that text typed
into it can be refused naming the field, rather than silently dropped by a number
widget), grouped by its name's prefix (`Process_`, `Sensor_`). A value defaults to the
middle of the normal range; outside the hard bounds it is refused before sending,
outside the normal range it is only flagged.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from castml.spec import ProjectSpec

Group = Literal["process", "sensor", "other"]
GROUPS: tuple[Group, ...] = ("process", "sensor", "other")
# A shot is 30 numbers: a few hundred bytes. 64 KiB leaves room for pretty-printing and
# a wrapper, and keeps a pasted log file or binary out of the JSON parser.
DEFAULT_SHOT_LIMIT_BYTES = 64 * 1024


@dataclass(frozen=True)
class FormField:
    """One feature as the form shows it."""

    name: str
    group: Group
    unit: str
    low: float
    high: float
    normal: tuple[float, float] | None
    description: str
    is_int: bool

    @property
    def default(self) -> float:
        """The middle of the normal range (of the bounds when there is none)."""
        lo, hi = self.normal or (self.low, self.high)
        middle = (lo + hi) / 2
        return float(round(middle)) if self.is_int else middle


def form_fields(spec: ProjectSpec) -> list[FormField]:
    """The spec's numeric features in spec order (the order the model takes them)."""
    fields = []
    for feature in spec.features:
        if not feature.is_numeric:
            continue
        prefix = feature.name.split("_", 1)[0].lower()
        group: Group = (
            "process" if prefix == "process" else "sensor" if prefix == "sensor" else "other"
        )
        low, high = feature.bounds
        fields.append(
            FormField(
                name=feature.name,
                group=group,
                unit=feature.unit,
                low=float(low),
                high=float(high),
                normal=(float(feature.normal[0]), float(feature.normal[1]))
                if feature.normal
                else None,
                description=feature.description or "",
                is_int=feature.dtype == "int",
            )
        )
    return fields


def grouped(fields: list[FormField]) -> dict[Group, list[FormField]]:
    """Fields by group, each group in spec order; empty groups left out."""
    out: dict[Group, list[FormField]] = {}
    for f in fields:
        out.setdefault(f.group, []).append(f)
    return {g: out[g] for g in GROUPS if g in out}


def format_value(value: float) -> str:
    """How a value shows in its text field: short, and exact for what the form made."""
    return f"{value:.6g}"


def default_texts(fields: list[FormField]) -> dict[str, str]:
    return {f.name: format_value(f.default) for f in fields}


@dataclass(frozen=True)
class FieldProblem:
    """What is wrong with one field; `code` is an i18n key under `problem.`."""

    field: str
    code: Literal["empty", "not_a_number", "out_of_bounds"]
    value: str = ""
    low: float = 0.0
    high: float = 0.0


@dataclass
class CheckedShot:
    """The form's values as numbers, the refusals, and the values only outside normal."""

    values: dict[str, float] = field(default_factory=dict)
    problems: list[FieldProblem] = field(default_factory=list)
    outside_normal: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def parse_number(text: str) -> float | None:
    """A finite number from a field's text (a decimal comma too); None when it is none."""
    cleaned = text.strip()
    if cleaned.count(",") == 1 and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    try:
        number = float(cleaned)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def check_field(f: FormField, text: str) -> tuple[float | None, FieldProblem | None]:
    if not text.strip():
        return None, FieldProblem(f.name, "empty")
    number = parse_number(text)
    if number is None:
        return None, FieldProblem(f.name, "not_a_number", text.strip()[:40])
    if not f.low <= number <= f.high:
        return None, FieldProblem(f.name, "out_of_bounds", format_value(number), f.low, f.high)
    return number, None


def outside_normal(f: FormField, value: float) -> bool:
    return f.normal is not None and not f.normal[0] <= value <= f.normal[1]


def check_shot(fields: list[FormField], texts: dict[str, str]) -> CheckedShot:
    """Every field checked at once, so that the form names every problem together."""
    checked = CheckedShot()
    for f in fields:
        number, problem = check_field(f, texts.get(f.name, ""))
        if problem is not None:
            checked.problems.append(problem)
            continue
        assert number is not None
        checked.values[f.name] = int(number) if f.is_int else number
        if outside_normal(f, number):
            checked.outside_normal.append(f.name)
    return checked


class ShotFileError(ValueError):
    """An uploaded or pasted JSON shot the form cannot use; `code` is an i18n key."""

    def __init__(self, code: str, **values: object) -> None:
        self.code = code
        self.values = values
        super().__init__(f"{code}: {values}")


@dataclass
class LoadedShot:
    """A JSON shot as form texts, and what it lacked (those fields keep their value)."""

    texts: dict[str, str]
    missing: list[str]


def parse_shot_json(data: bytes | str, fields: list[FormField], limit: int) -> LoadedShot:
    """`{"Process_Temperature": 670, ...}` or `{"features": {...}}` into form texts.

    Refuses (ShotFileError): more than `limit` bytes, not JSON, not an object, unknown
    feature names, values that are not numbers. Values are not bounds-checked here: they
    land in the form, which flags them like typed ones.
    """
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > limit:
        raise ShotFileError("shot.too_large", size=len(raw), limit=limit)
    try:
        parsed: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
        where = (
            f" (line {exc.lineno}, column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise ShotFileError("shot.malformed", reason=f"{reason}{where}") from None
    if isinstance(parsed, dict) and set(parsed) == {"features"}:
        parsed = parsed["features"]
    if (
        isinstance(parsed, dict)
        and isinstance(parsed.get("instances"), list)
        and parsed["instances"]
    ):
        parsed = parsed["instances"][0]
    if not isinstance(parsed, dict) or not parsed:
        raise ShotFileError("shot.not_object")
    names = {f.name for f in fields}
    unknown = sorted(str(k) for k in parsed if k not in names)
    if unknown:
        raise ShotFileError("shot.unknown", fields=", ".join(unknown[:10]))
    texts: dict[str, str] = {}
    for name, value in parsed.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ShotFileError("shot.bad_value", field=name, value=json.dumps(value)[:40])
        texts[name] = format_value(float(value))
    missing = [f.name for f in fields if f.name not in texts]
    return LoadedShot(texts, missing)
