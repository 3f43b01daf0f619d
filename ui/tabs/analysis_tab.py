"""The Analysis tab: the explainer's SHAP attributions for the current shot, drawn with plotly,
the top 10 features against their normal ranges, and a reading in words."""

from __future__ import annotations

import streamlit as st

from ui.analysis import bar_figure, reading, table_rows, top_features, waterfall_figure
from ui.service_calls import Explanation, ServiceDownError, ServiceRefusedError, explain
from ui.tabs.page import EXPLANATION_KEY, SHOT_KEY, Page, note_down, state


def _explain(page: Page) -> None:
    shot = state(SHOT_KEY)
    if shot is None:
        return
    try:
        st.session_state[EXPLANATION_KEY] = explain(page.settings, shot)
    except ServiceDownError as exc:
        note_down(exc)
    except ServiceRefusedError as exc:
        st.session_state["explain_error"] = page.t(
            "predict.server_refused",
            service=page.t(f"service.{exc.service}"),
            status=exc.status,
            message=exc.message,
        )


def charts(page: Page, explanation: Explanation) -> None:
    rows = top_features(explanation, page.by_name)
    kind = st.radio(
        page.t("analysis.kind"),
        ["bar", "waterfall"],
        format_func=lambda k: page.t(f"analysis.{k}"),
        horizontal=True,
        key="shap_kind",
    )
    title = f"{page.t('analysis.chart')} · {explanation.model_version}"
    figure = (
        bar_figure(rows, title)
        if kind == "bar"
        else waterfall_figure(explanation, rows, page.language, title)
    )
    st.plotly_chart(figure, key="shap_chart", width="stretch")
    st.subheader(page.t("analysis.top"))
    st.table(table_rows(rows, page.language))
    st.subheader(page.t("analysis.reading"))
    st.markdown(reading(explanation, rows, page.language))


def render(page: Page) -> None:
    if state(SHOT_KEY) is None:
        st.info(page.t("analysis.none"))
        return
    st.button(page.t("analysis.run"), key="explain", on_click=_explain, args=(page,))
    error = st.session_state.pop("explain_error", None)
    if error:
        st.error(error)
    explanation = state(EXPLANATION_KEY)
    if explanation is not None:
        charts(page, explanation)
