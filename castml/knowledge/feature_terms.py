"""The feature -> knowledge-terms mapping (feature_terms.yaml); defect names in two languages."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from castml.errors import SpecError

TERMS_PATH = Path(__file__).with_name("feature_terms.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DefectTerms(_Strict):
    en: list[str]
    ko: list[str]


class FeatureTerms(_Strict):
    en: list[str]
    ko: list[str]
    low: list[str] = Field(default_factory=list, description="Defects a low reading causes.")
    high: list[str] = Field(default_factory=list, description="Defects a high reading causes.")


class KnowledgeTerms(_Strict):
    project: str
    defects: dict[str, DefectTerms]
    features: dict[str, FeatureTerms]

    def feature_terms(self, name: str, language: str) -> list[str]:
        terms = self.features.get(name)
        return list(getattr(terms, language, terms.en)) if terms else []

    def defect_terms(self, defect: str, language: str) -> list[str]:
        terms = self.defects.get(normalise_defect(defect))
        return list(getattr(terms, language, terms.en)) if terms else []

    def defects_in(self, text: str) -> set[str]:
        """Defect keys a text names, in either language (matched on whole terms)."""
        lowered = text.lower()
        found = set()
        for key, terms in self.defects.items():
            for term in [*terms.en, *terms.ko, key.replace("_", " ")]:
                if not term.isascii() and len(term) < 2:
                    continue  # one Hangul syllable (버) occurs inside too many other words
                pattern = rf"(?<![\w]){re.escape(term.lower())}" if term.isascii() else None
                if (pattern and re.search(pattern, lowered)) or (
                    not term.isascii() and term in text
                ):
                    found.add(key)
                    break
        return found


def normalise_defect(label: str) -> str:
    """Catalog labels may read "Gas Porosity", "gas-porosity" or "gas_porosity"."""
    return re.sub(r"[^a-z0-9]+", "_", label.strip().lower()).strip("_")


@functools.cache
def load_knowledge_terms(path: Path = TERMS_PATH) -> KnowledgeTerms:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        terms = KnowledgeTerms.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise SpecError(f"knowledge terms {path} are invalid: {exc}") from None
    unknown = {
        d for f in terms.features.values() for d in (*f.low, *f.high) if d not in terms.defects
    }
    if unknown:
        raise SpecError(f"knowledge terms {path} name unknown defects: {sorted(unknown)}")
    return terms
