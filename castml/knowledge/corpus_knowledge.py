"""The hand-written process knowledge (manual, parameter guides, checklists) as documents."""

from __future__ import annotations

from castml.knowledge.corpus_model import (
    DEFECT_NAMES,
    Chapter,
    Document,
    Section,
    load_source,
    normal_range,
    unit,
)
from castml.spec import Feature

# Guides alternate Markdown and HTML by group; these checklists are HTML, the rest Markdown.
_HTML_CHECKLISTS = {"flash", "misrun", "cracks"}


def manual(lang: str, features: dict[str, Feature]) -> Document:
    src, ko = load_source("manual.yaml"), load_source("manual_ko.yaml")
    words = src[lang]
    chapters = []
    for chapter in src["chapters"]:
        text = chapter["en"] if lang == "en" else ko[chapter["key"]]
        drivers = []
        for i, (name, direction, note_en) in enumerate(chapter["en"]["drivers"]):
            note = note_en if lang == "en" else text["drivers"][i]
            where = {"high": words["above"], "low": words["below"]}.get(direction)
            feature = features[name]
            label = f"{name} ({unit(feature)}, {normal_range(feature, lang)})"
            drivers.append(f"{label}: {where} — {note}" if where else f"{label}: {note}")
        h = words["headings"]
        chapters.append(
            Chapter(
                text["title"],
                (
                    Section(h["mechanism"], (text["mechanism"],)),
                    Section(h["signs"], (text["signs"],)),
                    Section(h["drivers"], items=tuple(drivers)),
                    Section(h["checks"], items=tuple(text["checks"])),
                    Section(h["actions"], items=tuple(text["actions"])),
                ),
            )
        )
    defects = tuple(c["key"] for c in src["chapters"] if c["key"] != "overview")
    return Document(f"manual-{lang}", words["title"], lang, "manual", defects, "pdf", chapters)


def guides(lang: str, features: dict[str, Feature]) -> list[Document]:
    src = load_source("parameters.yaml")
    names = DEFECT_NAMES[lang]
    labels = {
        "en": (
            "Overview",
            "Normal operating range",
            "physical bounds",
            "When high",
            "When low",
            "Related defects",
            "How to check",
        ),
        "ko": (
            "개요",
            "정상 운전 범위",
            "물리적 한계",
            "높을 때",
            "낮을 때",
            "관련 불량",
            "점검 방법",
        ),
    }[lang]
    docs = []
    for index, group in enumerate(src["groups"]):
        sections = [Section(labels[0], (group[lang]["intro"],))]
        defects: list[str] = []
        for name in group["features"]:
            feature, know = features[name], src["features"][name]
            lo, hi = feature.bounds
            bounds = f"{labels[2]} {lo:g}–{hi:g} {unit(feature)}"
            head = f"{labels[1]}: {normal_range(feature, lang)}; {bounds}."
            if lang == "en":
                head = f"{feature.description} ({unit(feature)}). {head}"
            text = know[lang]
            related = ", ".join(names[d] for d in know["defects"])
            sections.append(
                Section(
                    name,
                    (
                        head,
                        text["role"],
                        f"{labels[3]}: {text['high']}",
                        f"{labels[4]}: {text['low']}",
                        f"{labels[5]}: {related}.",
                        f"{labels[6]}: {text['check']}",
                    ),
                )
            )
            defects += [d for d in know["defects"] if d not in defects]
        fmt = "md" if index % 2 == 0 else "html"
        title = group[lang]["title"]
        docs.append(
            Document(
                f"guide-{group['key']}-{lang}",
                title,
                lang,
                "parameter_guide",
                tuple(defects),
                fmt,
                [Chapter(title, tuple(sections))],
            )
        )
    return docs


def checklists(lang: str, features: dict[str, Feature]) -> list[Document]:
    src, man, params = (
        load_source("checklists.yaml"),
        load_source("manual.yaml"),
        load_source("parameters.yaml"),
    )
    words, h = src[lang], src[lang]["headings"]
    drivers = {c["key"]: c["en"]["drivers"] for c in man["chapters"]}
    docs = []
    for defect, text in src["defects"].items():
        body = text[lang]
        checks = []
        for name, direction, _ in drivers[defect]:
            feature, know = features[name], params["features"][name][lang]
            effect = know["low"] if direction == "low" else know["high"]
            if direction == "both":
                effect = f"{know['high']} / {know['low']}"
            checks.append(f"{name}: {normal_range(feature, lang)}. {effect}")
        title = words["title"].format(name=body["name"])
        sections = (
            Section(h["confirm"], items=tuple(body["confirm"])),
            Section(h["machine"], items=tuple(body["machine"])),
            Section(h["parameters"], items=tuple(checks)),
            Section(h["escalate"], items=tuple(body["escalate"])),
        )
        fmt = "html" if defect in _HTML_CHECKLISTS else "md"
        docs.append(
            Document(
                f"checklist-{defect}-{lang}",
                title,
                lang,
                "checklist",
                (defect,),
                fmt,
                [Chapter(title, sections)],
            )
        )
    return docs
