"""The History tab: predictions over time, the defect rate by hour and day, per version, realised
quality once labels arrived (all from the collector's Parquet), and the latest drift run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from castml.errors import MlflowUnavailableError
from ui import history
from ui.service_calls import ServiceDownError
from ui.tabs.page import Page, note_down


@st.cache_data(ttl=5, show_spinner=False)
def _predictions(log_dir: str, project: str, max_days: int) -> pd.DataFrame:
    since = datetime.now(UTC) - timedelta(days=max_days)
    return history.load_predictions(Path(log_dir), project, since=since)


@st.cache_data(ttl=5, show_spinner=False)
def _feedback(log_dir: str, project: str) -> pd.DataFrame:
    return history.load_feedback(Path(log_dir), project)


@st.cache_data(ttl=15, show_spinner=False)
def _drift(tracking_uri: str, ui_base: str, project: str) -> history.DriftSummary | None:
    return history.latest_drift(tracking_uri, ui_base, project)


def over_time(page: Page, frame: pd.DataFrame) -> go.Figure:
    """Each prediction's probability, one trace per version, defects marked."""
    figure = go.Figure()
    for version in history.versions_of(frame):
        part = frame[frame["model_version"] == version]
        figure.add_trace(
            go.Scattergl(
                x=part["time"],
                y=part["probability"],
                mode="markers",
                name=f"v{version}",
                marker={"symbol": ["x" if d else "circle" for d in part["defect"]], "size": 7},
            )
        )
    figure.update_layout(
        title=page.t("history.over_time"),
        yaxis={"title": page.t("predict.probability"), "range": [0, 1]},
        height=340,
    )
    return figure


def rate_figure(page: Page, rates: pd.DataFrame, title: str, period_format: str) -> go.Figure:
    """One bar per hour or day, labelled as such (a category axis: no sub-second ticks)."""
    figure = go.Figure(
        go.Bar(
            x=rates["period"].dt.strftime(period_format),
            y=rates["defect_rate"],
            customdata=rates["count"],
            hovertemplate="%{x}<br>%{y:.1%} (n=%{customdata})<extra></extra>",
        )
    )
    figure.update_layout(
        title=title,
        xaxis={"type": "category"},
        yaxis={"title": page.t("history.defect_rate"), "tickformat": ".0%"},
        height=300,
    )
    return figure


def _percent(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = frame.copy()
    for column in columns:
        out[column] = out[column].map(lambda v: "" if pd.isna(v) else f"{v:.1%}")
    return out


def tables(page: Page, frame: pd.DataFrame) -> None:
    st.subheader(page.t("history.by_version"))
    versions = history.per_version(frame)
    versions = _percent(versions, ["defect_rate", "mean_probability"]).rename(
        columns={
            "model_version": page.t("history.col.version"),
            "count": page.t("history.col.count"),
            "defect_rate": page.t("history.col.defect_rate"),
            "mean_probability": page.t("history.col.mean_probability"),
        }
    )
    st.table(versions.set_index(page.t("history.col.version")))
    st.subheader(page.t("history.quality"))
    quality = history.realised_quality(
        frame, _feedback(str(page.settings.payload_log_dir), page.spec.name)
    )
    if quality.empty:
        st.caption(page.t("history.no_labels"))
        return
    quality = _percent(quality, ["accuracy", "precision", "recall", "actual_rate"])
    names = ("version", "labelled", "accuracy", "precision", "recall", "actual_rate")
    quality.columns = [page.t(f"history.col.{c}") for c in names]
    st.table(quality.set_index(quality.columns[0]))


def drift(page: Page) -> None:
    st.subheader(page.t("history.drift"))
    try:
        summary = _drift(page.settings.tracking_uri, page.settings.mlflow_ui, page.spec.name)
    except MlflowUnavailableError as exc:
        note_down(ServiceDownError("mlflow", page.settings.tracking_uri, str(exc)))
        return
    if summary is None:
        st.caption(page.t("history.no_drift"))
        return
    share = "" if summary.drift_share is None else f"{summary.drift_share:.0%}"
    line = page.t(
        "history.drift_status",
        status=summary.status,
        version=summary.model_version,
        share=share,
        at=summary.computed_at[:19],
    )
    (st.warning if summary.dataset_drift else st.success)(line)
    st.markdown(
        page.t("history.drifted", items=", ".join(summary.drifted))
        if summary.drifted
        else page.t("history.no_drifted")
    )
    st.link_button(page.t("history.report_link"), summary.report_link)


def render(page: Page) -> None:
    log_dir = page.settings.payload_log_dir
    frame = _predictions(str(log_dir), page.spec.name, page.settings.history_max_days)
    left, right = st.columns([1, 2])
    with left:
        window = st.selectbox(
            page.t("history.window"),
            list(history.WINDOWS),
            index=2,
            format_func=lambda w: page.t(f"history.window.{w}"),
            key="history_window",
        )
    with right:
        chosen = st.multiselect(
            page.t("history.versions"),
            history.versions_of(frame),
            key="history_versions",
            placeholder=page.t("history.all_versions"),
        )
    start = history.window_start(window)
    if start is not None:
        frame = frame[frame["time"] >= pd.Timestamp(start)]
    frame = history.filter_versions(frame, chosen)
    if frame.empty:
        st.info(page.t("history.empty", path=log_dir))
    else:
        rate = float(frame["defect"].mean())
        count = page.t("history.count", n=len(frame))
        st.markdown(f"**{count}** · {page.t('history.defect_rate')} {rate:.1%}")
        st.plotly_chart(over_time(page, frame), key="history_over_time", width="stretch")
        hourly, daily = st.columns(2)
        with hourly:
            st.plotly_chart(
                rate_figure(
                    page,
                    history.defect_rate_by(frame, "h"),
                    page.t("history.by_hour"),
                    "%m-%d %H:00",
                ),
                key="history_by_hour",
                width="stretch",
            )
        with daily:
            st.plotly_chart(
                rate_figure(
                    page, history.defect_rate_by(frame, "D"), page.t("history.by_day"), "%Y-%m-%d"
                ),
                key="history_by_day",
                width="stretch",
            )
        tables(page, frame)
    drift(page)
