"""Past defect cases, drawn from the data generator (`castml.data.diecast`).

A case is a shot the generator marks defective, with the mechanism that dominates its defect
logit as the root cause; its outcome is the defect rate the generator itself predicts before
and after the correction. Case reports and the quarterly review are rendered from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

from castml.data.diecast import defect_logit, generate
from castml.knowledge.corpus_model import (
    DEFECT_NAMES,
    LANGUAGES,
    SEED,
    Chapter,
    Document,
    Section,
    fmt_number,
    load_source,
    normal_range,
    unit,
)
from castml.spec import Feature


@dataclass(frozen=True)
class Shot:
    values: dict[str, float]
    mechanism: str
    probability: float


def normal_midpoints(features: dict[str, Feature]) -> dict[str, float]:
    return {n: (f.normal[0] + f.normal[1]) / 2 for n, f in features.items() if f.normal}


def logit_with(rows: dict[str, np.ndarray], overrides: dict[str, float]) -> np.ndarray:
    changed = dict(rows)
    for name, value in overrides.items():
        changed[name] = np.full_like(rows[name], value)
    return defect_logit(changed)


def defective_shots(features: dict[str, Feature], mechanisms: dict[str, Any]) -> list[Shot]:
    """Defective shots with one clear cause: one mechanism's drivers, set back to the middle of
    their normal ranges, remove most of the defect logit and no other mechanism comes close."""
    mid = normal_midpoints(features)
    frames = [
        generate(40000, seed=SEED, scenario="none"),
        generate(4000, seed=SEED + 1, scenario="new_alloy_batch", severity=1.5),
        generate(4000, seed=SEED + 2, scenario="sensor_degradation", severity=1.5),
    ]
    shots: list[Shot] = []
    for frame in frames:
        frame = frame[frame["defect"] == 1]
        rows = {name: frame[name].to_numpy() for name in features}
        base = defect_logit(rows)
        drops = np.stack(
            [
                base - logit_with(rows, {d: mid[d] for d in m["drivers"]})
                for m in mechanisms.values()
            ]
        )
        order = np.sort(drops, axis=0)
        clear = (order[-1] >= 2.5) & (order[-2] <= 1.0)
        keys = list(mechanisms)
        for i in np.flatnonzero(clear):
            values = {name: float(rows[name][i]) for name in features}
            probability = float(1 / (1 + np.exp(-base[i])))
            shots.append(Shot(values, keys[int(np.argmax(drops[:, i]))], probability))
    return shots


def assign_shots(shots: list[Shot], mechanisms: Iterable[str], per: int) -> dict[str, list[Shot]]:
    """`per` distinct shots per mechanism, in a seeded order."""
    order = np.random.default_rng(SEED).permutation(len(shots))
    picked: dict[str, list[Shot]] = {m: [] for m in mechanisms}
    for i in order:
        bucket = picked[shots[int(i)].mechanism]
        if len(bucket) < per:
            bucket.append(shots[int(i)])
    short = [m for m, found in picked.items() if len(found) < per]
    if short:
        raise RuntimeError(f"the generator gave too few clear defective shots for {short}")
    return picked


def _outcome_rates(
    shot: Shot, drivers: Sequence[str], targets: dict[str, float]
) -> tuple[float, float]:
    """Mean defect probability of 500 fresh shots with the drivers held at the case's values,
    then at the corrected values: the outcome the generator itself predicts."""
    frame = generate(500, seed=SEED + 7)
    rows = {name: frame[name].to_numpy() for name in shot.values}

    def rate(overrides: dict[str, float]) -> float:
        return float(np.mean(1 / (1 + np.exp(-logit_with(rows, overrides))))) * 100

    return rate({d: shot.values[d] for d in drivers}), rate(targets)


@dataclass(frozen=True)
class Case:
    number: str
    mechanism: str
    defect: str
    title: str
    sections: tuple[Section, ...]
    shot: Shot
    part: str


def make_case(
    lang: str, index: int, shot: Shot, features: dict[str, Feature], src: dict[str, Any]
) -> Case:
    mech = src["mechanisms"][shot.mechanism]
    text, h = mech[lang], src["headings"][lang]
    part = src["parts"][lang][index % len(src["parts"][lang])]
    values = {n: f"{fmt_number(v)} {unit(features[n])}" for n, v in shot.values.items()}
    normals = {n: normal_range(f, lang) for n, f in features.items()}
    targets = {n: f"{fmt_number(v)} {unit(features[n])}" for n, v in mech["targets"].items()}
    ratio = shot.values["Process_Pressure"] / shot.values["Process_ClampingForce"] * 1e3
    fill = {"v": values, "n": normals, "t": targets, "part": part, "ratio": f"{ratio:.2f}"}
    number = f"CR-2026-{100 + index:03d}" if lang == "en" else f"CR-2026-{300 + index:03d}"
    day = date(2026, 1, 12) + timedelta(days=5 * index + (0 if lang == "en" else 2))
    cell = f"DC-{1 + index % 4}"
    if lang == "en":
        where = f"Cell {cell}, {day.isoformat()}, part: {part}. Defect: {text['name']}."
        status = {"above": "above normal", "below": "below normal"}
        rest = "All other readings were inside their normal ranges."
        others_head = "Other readings outside their normal range"
    else:
        where = f"셀 {cell}, {day.isoformat()}, 부품: {part}. 불량: {text['name']}."
        status = {"above": "정상보다 높음", "below": "정상보다 낮음"}
        rest = "그 밖의 측정값은 모두 정상 범위 안에 있었다."
        others_head = "정상 범위를 벗어난 다른 측정값"
    conditions, others = [], []
    for name, feature in features.items():
        lo, hi = feature.normal or feature.bounds
        v = shot.values[name]
        state = "above" if v > hi else "below" if v < lo else None
        line = f"{name}: {values[name]} ({normals[name]})"
        if name in mech["drivers"]:
            conditions.append(f"{line}{' — ' + status[state] if state else ''}")
        elif state:
            others.append(f"{line} — {status[state]}")
    condition_items = conditions + ([f"{others_head}: " + "; ".join(others)] if others else [rest])
    before, after = _outcome_rates(shot, mech["drivers"], mech["targets"])
    outcome = src["outcome"][lang].format(before=f"{before:.1f}", after=f"{after:.1f}")
    sections = (
        Section(h["summary"], (where, text["summary"].format(**fill))),
        Section(h["conditions"], items=tuple(condition_items)),
        Section(h["cause"], (" ".join(text["cause"].format(**fill).split()),)),
        Section(h["action"], (" ".join(text["action"].format(**fill).split()),)),
        Section(h["outcome"], (" ".join(outcome.split()),)),
    )
    title_word = "Case report" if lang == "en" else "불량 사례 보고서"
    title = f"{title_word} {number}: {text['name']} ({part})"
    return Case(number, shot.mechanism, mech["defect"], title, sections, shot, part)


def cases(
    features: dict[str, Feature],
) -> tuple[dict[str, list[Case]], dict[str, list[Case]], dict[str, list[Shot]]]:
    """Case reports (2 per mechanism and language), quarterly-review cases, and spare shots
    for the evaluation set's prediction-context queries."""
    src = load_source("cases.yaml")
    review_mechs = {
        "en": ["air_entrapment", "cold_die", "flash", "shrinkage"],
        "ko": ["hydrogen", "cold_melt", "shot_end_wear", "flash"],
    }
    picked = assign_shots(defective_shots(features, src["mechanisms"]), src["mechanisms"], 10)
    reports: dict[str, list[Case]] = {lang: [] for lang in LANGUAGES}
    reviews: dict[str, list[Case]] = {lang: [] for lang in LANGUAGES}
    spare: dict[str, list[Shot]] = {lang: [] for lang in LANGUAGES}
    for li, lang in enumerate(LANGUAGES):
        for mechanism, shots in picked.items():
            mine = shots[li * 5 : li * 5 + 5]  # en: shots 0-4, ko: shots 5-9
            for shot in mine[:2]:
                reports[lang].append(make_case(lang, len(reports[lang]), shot, features, src))
            rest = mine[2:]
            if mechanism in review_mechs[lang]:
                index = 20 + review_mechs[lang].index(mechanism)
                reviews[lang].append(make_case(lang, index, rest.pop(0), features, src))
            spare[lang] += rest
        reviews[lang].sort(key=lambda c: c.number)
    return reports, reviews, spare


def case_documents(lang: str, reports: list[Case]) -> list[Document]:
    docs = []
    for i, case in enumerate(reports, start=1):
        fmt = "html" if i % 3 == 0 else "md"
        docs.append(
            Document(
                f"case-{lang}-{i:02d}",
                case.title,
                lang,
                "case_report",
                (case.defect,),
                fmt,
                [Chapter(case.title, case.sections)],
            )
        )
    return docs


def review_document(lang: str, reviews: list[Case]) -> Document:
    names = DEFECT_NAMES[lang]
    if lang == "en":
        title = "Quality review Q2 2026: die-casting defect cases"
        head, intro = (
            "Overview of the quarter",
            (
                f"This review collects {len(reviews)} defect cases of the quarter from cells "
                "DC-1 to DC-4, one per page, each with its conditions, root cause, action and "
                "outcome. "
                "Defects covered: " + ", ".join(sorted({names[c.defect] for c in reviews})) + "."
            ),
        )
    else:
        title = "2026년 2분기 품질 리뷰: 다이캐스팅 불량 사례"
        head, intro = (
            "분기 개요",
            (
                f"이 리뷰는 DC-1~DC-4 셀에서 이번 분기에 발생한 불량 사례 {len(reviews)}건을 "
                "한 쪽에 하나씩 발생 조건, 근본 원인, 조치, 결과와 함께 정리한다. 다룬 불량: "
                + ", ".join(sorted({names[c.defect] for c in reviews}))
                + "."
            ),
        )
    listing = tuple(c.title for c in reviews)
    chapters = [Chapter(title, (Section(head, (intro,), listing),))]
    chapters += [Chapter(c.title, c.sections) for c in reviews]
    defects = tuple(sorted({c.defect for c in reviews}))
    return Document(f"review-2026q2-{lang}", title, lang, "case_report", defects, "pdf", chapters)
