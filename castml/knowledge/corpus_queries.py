"""The labelled evaluation set (`eval/queries.jsonl`): queries with the passages that answer them.

Hand-written queries from `corpus/source/queries.yaml`, plus templated ones over every parameter,
case report, quarterly-review page and spare defective shot (with a prediction context).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from castml.data.diecast import defect_logit
from castml.knowledge.corpus_cases import Shot, normal_midpoints
from castml.knowledge.corpus_model import (
    DEFECT_NAMES,
    LANGUAGES,
    Document,
    fmt_number,
    load_source,
    normal_range,
    unit,
)
from castml.knowledge.passages import slugify
from castml.spec import Feature


class Resolver:
    """Names passages the way the retrieval library identifies them: `<doc>#p<page>` for a PDF
    page, `<doc>#<slug of the section heading>` for a Markdown or HTML section."""

    def __init__(self, docs: list[Document], context: dict[str, Any]) -> None:
        self.docs = {d.doc_id: d for d in docs}
        features: dict[str, Feature] = context["features"]
        # mechanism -> its case reports and its quarterly-review chapter, per language
        self.cases: dict[tuple[str, str], list[str]] = {}
        self.review_chapter: dict[tuple[str, str], int] = {}
        for lang in LANGUAGES:
            case_docs = [d for d in docs if d.language == lang and d.doc_id.startswith("case-")]
            for doc, case in zip(case_docs, context["reports"][lang], strict=True):
                self.cases.setdefault((lang, case.mechanism), []).append(doc.doc_id)
            for i, case in enumerate(context["reviews"][lang]):
                self.review_chapter[(lang, case.mechanism)] = i + 1
        self.chapters = {c["key"]: i for i, c in enumerate(load_source("manual.yaml")["chapters"])}
        self.checklist_heads = {
            lang: load_source("checklists.yaml")[lang]["headings"] for lang in LANGUAGES
        }
        self.case_heads = load_source("cases.yaml")["headings"]
        self.features = features
        self.guide_of = {
            (d.language, s.heading): d.doc_id
            for d in docs
            if d.doc_type == "parameter_guide"
            for s in d.chapters[0].sections
        }

    def section(self, doc_id: str, heading: str) -> dict[str, Any]:
        doc = self.docs[doc_id]
        if heading not in [s.heading for s in doc.chapters[0].sections]:
            raise KeyError(f"{doc_id} has no section {heading!r}")
        return {
            "document": doc_id,
            "section": heading,
            "passage_id": f"{doc_id}#{slugify(heading)}",
        }

    def pages(self, doc_id: str, chapter: int) -> list[dict[str, Any]]:
        doc = self.docs[doc_id]
        title = doc.chapters[chapter].title
        return [
            {
                "document": doc_id,
                "page": p["page"],
                "section": title,
                "passage_id": f"{doc_id}#p{p['page']}",
            }
            for p in doc.pages
            if p["section"] == title
        ]

    def resolve(self, ref: str, lang: str) -> list[dict[str, Any]]:
        kind, _, rest = ref.partition(":")
        if kind == "manual":
            return self.pages(f"manual-{lang}", self.chapters[rest])
        if kind == "guide" and rest in self.features:
            return [self.section(self.guide_of[(lang, rest)], rest)]
        if kind == "guide":
            doc_id = f"guide-{rest}-{lang}"
            return [self.section(doc_id, self.docs[doc_id].chapters[0].sections[0].heading)]
        if kind == "checklist":
            defect, key = rest.split(":")
            return [self.section(f"checklist-{defect}-{lang}", self.checklist_heads[lang][key])]
        if kind == "case":
            doc_id, key = rest.split(":")
            return [self.section(doc_id, self.case_heads[lang][key])]
        if kind == "cases":  # every past case of a mechanism: root causes and the review page
            heading = self.case_heads[lang]["cause"]
            found = [self.section(d, heading) for d in self.cases[(lang, rest)]]
            chapter = self.review_chapter.get((lang, rest))
            return found + (self.pages(f"review-2026q2-{lang}", chapter) if chapter else [])
        raise KeyError(f"unknown passage reference {ref!r}")

    def resolve_all(self, refs: Iterable[str], lang: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for ref in refs:
            out += [p for p in self.resolve(ref, lang) if p not in out]
        return out


def _reading(name: str, value: float, features: dict[str, Feature]) -> str:
    return f"{name} {fmt_number(value)} {unit(features[name])}"


def top_factors(shot: Shot, features: dict[str, Feature], k: int = 3) -> list[tuple[str, float]]:
    """The features whose return to the middle of their normal range lowers the generator's
    defect logit most: the attribution a prediction's explanation would name first."""
    mid = normal_midpoints(features)
    names = list(features)
    rows = {n: np.full(len(names), shot.values[n]) for n in names}
    for i, name in enumerate(names):
        rows[name] = rows[name].copy()
        rows[name][i] = mid[name]
    drops = defect_logit({n: np.array([shot.values[n]]) for n in names})[0] - defect_logit(rows)
    order = np.argsort(-drops, kind="stable")[:k]
    return [(names[i], float(drops[i])) for i in order]


def templated_queries(
    lang: str, docs: list[Document], context: dict[str, Any], res: Resolver
) -> list[dict[str, Any]]:
    src, features = load_source("queries.yaml")["templates"], context["features"]
    mechs = load_source("cases.yaml")["mechanisms"]
    queries: list[dict[str, Any]] = []
    for i, (name, feature) in enumerate(features.items()):
        lo, hi = feature.normal or feature.bounds
        high = min(hi + 0.2 * (hi - lo), feature.bounds[1])
        low = max(lo - 0.2 * (hi - lo), feature.bounds[0])
        text = src["parameter"][lang][i % 3].format(
            name=name,
            high=f"{fmt_number(high)} {unit(feature)}",
            low=f"{fmt_number(low)} {unit(feature)}",
        )
        queries.append(
            {"kind": "parameter", "query": text, "relevant": res.resolve(f"guide:{name}", lang)}
        )
    case_docs = [d for d in docs if d.language == lang and d.doc_id.startswith("case-")]
    reports = list(zip(case_docs, context["reports"][lang], strict=True))
    for j, (doc, case) in enumerate(reports):
        joiner = " and " if lang == "en" else ", "
        conditions = joiner.join(
            _reading(n, case.shot.values[n], features) for n in mechs[case.mechanism]["drivers"]
        )
        text = src["case"][lang][j % 2].format(
            defect=DEFECT_NAMES[lang][case.defect], part=case.part, conditions=conditions
        )
        # The case itself answers best; the other cases of the same mechanism (reports and
        # the review page) answer the cause question too.
        refs = [f"case:{doc.doc_id}:cause", f"case:{doc.doc_id}:action", f"cases:{case.mechanism}"]
        queries.append({"kind": "case", "query": text, "relevant": res.resolve_all(refs, lang)})
    for i, case in enumerate(context["reviews"][lang]):
        text = src["review"][lang].format(
            defect=DEFECT_NAMES[lang][case.defect], part=case.part, number=case.number
        )
        queries.append(
            {"kind": "review", "query": text, "relevant": res.pages(f"review-2026q2-{lang}", i + 1)}
        )
    normal_word = "normal" if lang == "en" else "정상"
    for shot in context["spare"][lang]:
        mech = mechs[shot.mechanism]
        factors = top_factors(shot, features)
        listed = ", ".join(
            f"{_reading(n, v, features)} ({normal_word} {normal_range(features[n], lang)})"
            for n, v in ((n, shot.values[n]) for n, _ in factors)
        )
        text = src["prediction"][lang].format(probability=f"{shot.probability:.2f}", factors=listed)
        named = [n for n, _ in factors if n in mech["drivers"]] or mech["drivers"]
        refs = [
            f"manual:{mech['defect']}",
            *[f"guide:{n}" for n in named],
            f"checklist:{mech['defect']}:parameters",
            f"cases:{shot.mechanism}",
        ]
        ctx = {
            "prediction": {"class": "defect", "probability": round(shot.probability, 4)},
            "top_features": [
                {"name": n, "value": round(shot.values[n], 4), "contribution": round(c, 4)}
                for n, c in factors
            ],
            "features": {n: round(v, 4) for n, v in shot.values.items()},
        }
        queries.append(
            {
                "kind": "prediction_context",
                "query": text,
                "context": ctx,
                "relevant": res.resolve_all(refs, lang),
            }
        )
    return queries


def write_queries(path: Path, docs: list[Document], context: dict[str, Any]) -> int:
    res = Resolver(docs, context)
    handwritten = load_source("queries.yaml")["queries"]
    lines = []
    for lang in LANGUAGES:
        mine = [
            {
                "kind": q["kind"],
                "query": q["query"],
                "relevant": res.resolve_all(q["refs"], lang),
                **({"context": q["context"]} if "context" in q else {}),
            }
            for q in handwritten
            if q["lang"] == lang
        ]
        mine += templated_queries(lang, docs, context, res)
        for i, q in enumerate(mine, start=1):
            record = {"id": f"q-{lang}-{i:03d}", "language": lang, **q}
            lines.append(json.dumps(record, ensure_ascii=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)
