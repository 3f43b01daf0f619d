"""The UI's logic without a browser: languages, the feature form's checks, JSON shots, the
analysis' top features and reading, and the assistant's citation numbering."""

from __future__ import annotations

import json
import re

import pytest

from castml.spec import load_spec
from ui.analysis import bar_figure, reading, top_features, waterfall_figure
from ui.i18n import STRINGS, pick_language, t
from ui.service_calls import Explanation
from ui.shot_form import (
    ShotFileError,
    check_shot,
    default_texts,
    form_fields,
    grouped,
    parse_shot_json,
)
from ui.tabs.assistant_tab import numbered

FIELDS = form_fields(load_spec("diecast"))
LIMIT = 64 * 1024


def test_every_string_exists_in_both_languages_and_formats() -> None:
    for key, texts in STRINGS.items():
        assert set(texts) == {"ko", "en"}, key
        assert all(text.strip() for text in texts.values()), key
    assert t("tab.predict", "ko") == "예측"
    assert t("banner.down", "en", service="explainer", url="u", reason="r").startswith(
        "Server down: explainer"
    )


@pytest.mark.parametrize(
    ("header", "locale", "expected"),
    [
        ("ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7", None, "ko"),
        ("en-US,en;q=0.9,ko;q=0.8", None, "en"),
        ("en;q=0.5,ko;q=0.9", None, "ko"),  # ranked by q, not by order
        ("fr-FR,fr;q=0.9,ko;q=0.3", None, "ko"),  # the first of the two offered
        ("ko;q=0", None, "fr"),  # q=0 means "not this one": the deployment's fallback
        (None, "ko-KR", "ko"),  # no header reached the app: the browser's locale
        ("", None, "fr"),
    ],
)
def test_korean_is_the_default_when_the_browser_asks_for_it(
    header: str | None, locale: str | None, expected: str
) -> None:
    assert pick_language(header, locale, fallback="fr") == expected  # type: ignore[arg-type]


def test_the_form_groups_the_spec_features_with_units_and_defaults_mid_normal() -> None:
    groups = grouped(FIELDS)
    assert list(groups) == ["process", "sensor"]
    assert len(groups["process"]) == 16 and len(groups["sensor"]) == 14
    temperature = next(f for f in FIELDS if f.name == "Process_Temperature")
    assert (temperature.unit, temperature.normal, temperature.default) == (
        "degC",
        (645.0, 695.0),
        670.0,
    )
    checked = check_shot(FIELDS, default_texts(FIELDS))
    assert checked.ok and not checked.outside_normal and len(checked.values) == 30


def test_the_form_refuses_text_and_out_of_bounds_values_naming_each_field() -> None:
    texts = default_texts(FIELDS)
    texts.update(
        Process_Temperature="hot",
        Process_Pressure="250",  # bounds [0, 200]
        Sensor_Vibration="",
        Sensor_HydrogenContent="0,4",  # a decimal comma: 0.4, outside normal only
        Process_CycleTime="nan",
    )
    checked = check_shot(FIELDS, texts)
    problems = {p.field: p.code for p in checked.problems}
    assert problems == {
        "Process_Temperature": "not_a_number",
        "Process_Pressure": "out_of_bounds",
        "Sensor_Vibration": "empty",
        "Process_CycleTime": "not_a_number",
    }
    assert checked.values["Sensor_HydrogenContent"] == pytest.approx(0.4)
    assert checked.outside_normal == ["Sensor_HydrogenContent"]


def test_a_json_shot_loads_plain_or_wrapped_and_names_what_is_missing() -> None:
    shot = {"Process_Temperature": 700, "Sensor_Vibration": 2.5}
    for body in (shot, {"features": shot}, {"instances": [shot]}):
        loaded = parse_shot_json(json.dumps(body), FIELDS, LIMIT)
        assert loaded.texts == {"Process_Temperature": "700", "Sensor_Vibration": "2.5"}
        assert len(loaded.missing) == 28 and "Process_Pressure" in loaded.missing


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"{" + b" " * LIMIT + b"}", "shot.too_large"),
        (b'{"Process_Temperature": 700,', "shot.malformed"),
        (b"\xff\xfe\x00", "shot.malformed"),
        (b"[1, 2, 3]", "shot.not_object"),
        (b"{}", "shot.not_object"),
        (b'{"Process_Temprature": 700}', "shot.unknown"),
        (b'{"Process_Temperature": "hot"}', "shot.bad_value"),
        (b'{"Process_Temperature": NaN}', "shot.bad_value"),
        (b'{"Process_Temperature": true}', "shot.bad_value"),
    ],
)
def test_a_bad_json_shot_is_refused_with_a_clear_reason(data: bytes, code: str) -> None:
    with pytest.raises(ShotFileError) as caught:
        parse_shot_json(data, FIELDS, LIMIT)
    assert caught.value.code == code
    message = t(code, "en", **caught.value.values)
    assert not re.search(r"\{[a-z_]+\}", message), message  # every placeholder filled


def _explanation() -> Explanation:
    values = {f.name: f.default for f in FIELDS}
    values["Sensor_HydrogenContent"] = 0.4  # above its normal range
    attributions = {f.name: 0.001 * (i % 5 - 2) for i, f in enumerate(FIELDS)}
    attributions["Sensor_HydrogenContent"] = 0.30
    attributions["Process_Pressure"] = -0.05
    total = sum(attributions.values())
    return Explanation(0.1, 0.1 + total, attributions, values, "diecast/1")


def test_the_analysis_reads_the_top_features_against_their_normal_ranges() -> None:
    explanation = _explanation()
    rows = top_features(explanation, {f.name: f for f in FIELDS})
    assert len(rows) == 10
    assert (rows[0].feature, rows[0].status) == ("Sensor_HydrogenContent", "high")
    assert rows[1].feature == "Process_Pressure" and rows[1].status == "normal"
    korean = reading(explanation, rows, "ko")
    assert "Sensor_HydrogenContent 0.4 mL/100g (높음↑)" in korean
    assert "Process_Pressure" in korean and "불량 확률" in korean
    english = reading(explanation, rows, "en")
    assert "Pushed the probability up most: Sensor_HydrogenContent" in english
    bars = bar_figure(rows, "title")
    assert list(bars.data[0].y)[-1] == "Sensor_HydrogenContent"  # the largest on top
    waterfall = waterfall_figure(explanation, rows, "en", "title")
    # base + the ten + the other twenty summed: the total lands on the prediction
    steps = list(waterfall.data[0].y)
    assert sum(steps[:-1]) == pytest.approx(explanation.prediction)
    assert steps[-1] == pytest.approx(explanation.prediction)


def test_inline_citations_are_numbered_like_the_sources_under_the_answer() -> None:
    sources = [
        {"document": "en-porosity", "section": "Gas porosity", "relevance": 0.8},
        {"document": "ko-manual", "page": 3, "relevance": 0.6},
    ]
    text = (
        "- Hydrogen causes pores [en-porosity, § Gas porosity, 0.80]\n"
        "- 탈가스 처리 [ko-manual, p. 3, 0.60]\n- other [unknown, p. 9, 0.10]"
    )
    out = numbered(text, sources)
    assert "pores **[1]**" in out and "처리 **[2]**" in out
    assert "[unknown, p. 9, 0.10]" in out  # a citation without a source stays as it was
