"""The Predict tab: the feature form (grouped, with units and normal ranges), loading a shot
(paste, upload, a recent logged one), and the transformer's answer."""

from __future__ import annotations

from typing import Any

import streamlit as st

from ui import history
from ui.analysis import gauge_figure, latent_figure
from ui.service_calls import (
    Prediction,
    ServiceDownError,
    ServiceRefusedError,
    predict,
)
from ui.shot_form import (
    FieldProblem,
    FormField,
    ShotFileError,
    check_field,
    check_shot,
    default_texts,
    format_value,
    grouped,
    outside_normal,
    parse_shot_json,
)
from ui.tabs.page import (
    CHAT_KEY,
    EXPLANATION_KEY,
    FIELD_PREFIX,
    PREDICTION_KEY,
    REPORT_KEY,
    SHOT_KEY,
    Page,
    note_down,
    state,
)

COLUMNS = 3
LOAD_MESSAGE_KEY = "load_message"  # (kind, text) shown once after a shot was loaded


def problem_text(page: Page, problem: FieldProblem) -> str:
    return page.t(
        f"problem.{problem.code}",
        field=problem.field,
        value=problem.value,
        low=format_value(problem.low),
        high=format_value(problem.high),
    )


def init_form(fields: list[FormField]) -> None:
    """Every field starts in the middle of its normal range (once per session)."""
    for name, text in default_texts(fields).items():
        st.session_state.setdefault(FIELD_PREFIX + name, text)


def form_texts(fields: list[FormField]) -> dict[str, str]:
    return {f.name: str(st.session_state.get(FIELD_PREFIX + f.name, "")) for f in fields}


def _set_texts(texts: dict[str, str]) -> None:
    for name, text in texts.items():
        st.session_state[FIELD_PREFIX + name] = text


# Callbacks run before the next run draws the widgets: the only time a widget's value may
# be set from code.


def _reset(fields: list[FormField]) -> None:
    _set_texts(default_texts(fields))


def _load_json(page: Page, data: bytes | str, source: str) -> None:
    try:
        loaded = parse_shot_json(data, page.fields, page.settings.shot_upload_max_bytes)
    except ShotFileError as exc:
        st.session_state[LOAD_MESSAGE_KEY] = ("error", page.t(exc.code, **exc.values))
        return
    _set_texts(loaded.texts)
    text = page.t("predict.loaded", source=source)
    if loaded.missing:
        text += " · " + page.t("shot.missing", fields=", ".join(loaded.missing))
    st.session_state[LOAD_MESSAGE_KEY] = ("warning" if loaded.missing else "success", text)


def _on_paste(page: Page) -> None:
    _load_json(page, str(st.session_state.get("paste_json", "")), page.t("predict.paste"))


def _on_upload(page: Page) -> None:
    uploaded = st.session_state.get("upload_json")
    if uploaded is None:
        return
    # Read one byte past the limit: enough to know it is too large, never the whole file.
    data = uploaded.read(page.settings.shot_upload_max_bytes + 1)
    size = max(len(data), int(getattr(uploaded, "size", 0) or 0))
    if size > page.settings.shot_upload_max_bytes:
        message = page.t("shot.too_large", size=size, limit=page.settings.shot_upload_max_bytes)
        st.session_state[LOAD_MESSAGE_KEY] = ("error", message)
        return
    _load_json(page, data, uploaded.name)


def _on_recent(shots: dict[str, dict[str, float]]) -> None:
    chosen = shots.get(str(st.session_state.get("recent_shot", "")))
    if chosen:
        _set_texts({name: format_value(value) for name, value in chosen.items()})


@st.cache_data(ttl=5, show_spinner=False)
def _recent(log_dir: str, project: str, features: tuple[str, ...]) -> list[tuple[str, Any]]:
    from pathlib import Path

    return history.recent_shots(Path(log_dir), project, list(features))


def loaders(page: Page) -> None:
    with st.expander(page.t("predict.load")):
        paste, upload, recent = st.columns(3)
        with paste:
            st.text_area(page.t("predict.paste"), key="paste_json", height=120)
            st.button(page.t("predict.paste_apply"), on_click=_on_paste, args=(page,))
        with upload:
            st.file_uploader(
                page.t("predict.upload"),
                type=["json"],
                key="upload_json",
                on_change=_on_upload,
                args=(page,),
            )
        with recent:
            names = tuple(f.name for f in page.fields)
            shots = dict(_recent(str(page.settings.payload_log_dir), page.spec.name, names))
            if shots:
                st.selectbox(page.t("predict.recent"), list(shots), key="recent_shot")
                st.button(page.t("predict.recent_apply"), on_click=_on_recent, args=(shots,))
            else:
                st.caption(page.t("predict.recent_none"))
    message = st.session_state.pop(LOAD_MESSAGE_KEY, None)
    if message:
        kind, text = message
        {"error": st.error, "warning": st.warning, "success": st.success}[kind](text)


def field_input(page: Page, f: FormField) -> None:
    """One text field, with its unit and normal range, flagged inline as it is typed."""
    label = f"{f.name} ({f.unit})" if f.unit else f.name
    normal = f.normal or (f.low, f.high)
    help_text = page.t(
        "predict.field_help",
        description=f.description,
        normal=f"{format_value(normal[0])}–{format_value(normal[1])}",
        unit=f.unit,
        bounds=f"[{format_value(f.low)}, {format_value(f.high)}]",
    )
    text = st.text_input(label, key=FIELD_PREFIX + f.name, help=help_text)
    number, problem = check_field(f, text)
    if problem is not None:
        st.error(problem_text(page, problem))
    elif number is not None and outside_normal(f, number):
        st.warning(
            page.t(
                "predict.normal",
                low=format_value(normal[0]),
                high=format_value(normal[1]),
                unit=f.unit,
            )
            + " ⚠"
        )
    else:
        st.caption(
            page.t(
                "predict.normal",
                low=format_value(normal[0]),
                high=format_value(normal[1]),
                unit=f.unit,
            )
        )


def the_form(page: Page) -> None:
    for group, fields in grouped(page.fields).items():
        st.subheader(page.t(f"predict.group.{group}"))
        columns = st.columns(COLUMNS)
        for i, f in enumerate(fields):
            with columns[i % COLUMNS]:
                field_input(page, f)


def send(page: Page) -> None:
    checked = check_shot(page.fields, form_texts(page.fields))
    if not checked.ok:
        st.error(
            page.t(
                "predict.refused_form",
                fields="; ".join(problem_text(page, p) for p in checked.problems),
            )
        )
        return
    try:
        prediction = predict(page.settings, checked.values)
    except ServiceDownError as exc:
        note_down(exc)
        return
    except ServiceRefusedError as exc:
        named = "; ".join(f"{field}: {problem}" for field, problem in exc.fields)
        st.error(
            page.t(
                "predict.server_refused",
                service=page.t(f"service.{exc.service}"),
                status=exc.status,
                message=f"{exc.message} {named}".strip(),
            )
        )
        return
    st.session_state[SHOT_KEY] = checked.values
    st.session_state[PREDICTION_KEY] = prediction
    # A new shot: its analysis and its chat context are yet to come.
    for key in (EXPLANATION_KEY, REPORT_KEY):
        st.session_state.pop(key, None)
    st.session_state.setdefault(CHAT_KEY, [])


def result(page: Page, prediction: Prediction) -> None:
    st.subheader(page.t("predict.result"))
    shown_class = (
        page.t(f"class.{prediction.class_name}")
        if prediction.class_name in ("ok", "defect")
        else prediction.class_name
    )
    confidence = (
        page.t(f"confidence.{prediction.confidence}")
        if prediction.confidence in ("low", "medium", "high")
        else prediction.confidence
    )
    left, right = st.columns([1, 1])
    with left:
        st.metric(page.t("predict.class"), shown_class)
        st.metric(page.t("predict.confidence"), confidence)
        st.metric(page.t("predict.version"), prediction.model_version)
        st.metric(
            page.t("predict.latency"),
            f"{prediction.round_trip_ms:.1f} ms",
            help=f"server {prediction.server_ms:.2f} ms · request {prediction.request_id}",
        )
    with right:
        st.plotly_chart(
            gauge_figure(prediction.probability, page.t("predict.probability")),
            key="gauge",
            width="stretch",
        )
    if prediction.latent:
        st.plotly_chart(
            latent_figure(prediction.latent, page.t("predict.latent")),
            key="latent",
            width="stretch",
        )


def render(page: Page) -> None:
    init_form(page.fields)
    loaders(page)
    the_form(page)
    texts = form_texts(page.fields)
    flagged = [
        n
        for n, v in check_shot(page.fields, texts).values.items()
        if outside_normal(page.by_name[n], v)
    ]
    if flagged:
        st.warning(page.t("predict.outside_normal", fields=", ".join(flagged)))
    buttons = st.columns([1, 1, 4])
    with buttons[0]:
        clicked = st.button(page.t("predict.submit"), type="primary", key="predict")
    with buttons[1]:
        st.button(page.t("predict.reset"), on_click=_reset, args=(page.fields,))
    if clicked:
        send(page)
    prediction = state(PREDICTION_KEY)
    if prediction is not None:
        result(page, prediction)
