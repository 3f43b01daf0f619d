"""What the die-casting corpus is made of: documents, chapters, sections, and the shared wording.

The source texts live in `corpus/source/*.yaml`; units and ranges come from the diecast spec, so
every module that renders a number renders it the same way through `unit`, `fmt_number` and
`normal_range`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from castml.spec import Feature

SOURCE_DIR = Path(__file__).parent / "corpus" / "source"
LANGUAGES = ("en", "ko")
SEED = 20261202
DEFECT_NAMES = {
    "en": {
        "gas_porosity": "gas porosity",
        "cold_shut": "cold shut",
        "shrinkage": "shrinkage porosity",
        "flash": "flash",
        "soldering": "die wear and soldering",
        "misrun": "misrun",
        "cracks": "cracks",
    },
    "ko": {
        "gas_porosity": "가스 기공",
        "cold_shut": "콜드 셧",
        "shrinkage": "수축 기공",
        "flash": "버",
        "soldering": "금형 마모와 소착",
        "misrun": "미성형",
        "cracks": "균열",
    },
}
_UNITS = {"degC": "°C"}


@dataclass(frozen=True)
class Section:
    heading: str
    paragraphs: tuple[str, ...] = ()
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chapter:
    """A group of sections; in a PDF each chapter starts on a new page."""

    title: str
    sections: tuple[Section, ...]


@dataclass
class Document:
    doc_id: str
    title: str
    language: str
    doc_type: str
    defects: tuple[str, ...]
    fmt: str
    chapters: list[Chapter]
    pages: list[dict[str, Any]] = field(default_factory=list)  # PDF: page -> chapter title

    @property
    def path(self) -> str:
        return f"documents/{self.doc_id}.{self.fmt}"


def load_source(name: str) -> Any:
    """One hand-written source file from `corpus/source/`, parsed."""
    return yaml.safe_load((SOURCE_DIR / name).read_text(encoding="utf-8"))


def unit(feature: Feature) -> str:
    return _UNITS.get(feature.unit, feature.unit)


def fmt_number(x: float) -> str:
    """Readings with the precision an operator reads them at (3 significant digits, at least)."""
    magnitude = abs(x)
    decimals = 0 if magnitude >= 1000 else 1 if magnitude >= 10 else 2 if magnitude >= 1 else 3
    return f"{x:.{decimals}f}"


def normal_range(feature: Feature, lang: str) -> str:
    lo, hi = feature.normal or feature.bounds
    dash = "–" if lang == "en" else "~"
    return f"{lo:g}{dash}{hi:g} {unit(feature)}"
