"""The Models tab, read-only: registered versions, aliases, gate verdicts, data lineage, and the
MLflow UI link of each (a person promotes there by moving @champion)."""

from __future__ import annotations

import streamlit as st

from castml.errors import MlflowUnavailableError
from ui.models_view import VersionView, registered_versions
from ui.service_calls import ServiceDownError
from ui.tabs.page import Page, note_down


@st.cache_data(ttl=10, show_spinner=False)
def _versions(tracking_uri: str, ui_base: str, project: str) -> list[VersionView]:
    return registered_versions(tracking_uri, ui_base, project)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def versions_table(page: Page, views: list[VersionView]) -> str:
    """A Markdown table (plain text to read, and a real link per version)."""
    heads = ("version", "aliases", "gate", "reason", "data", "created", "link")
    lines = [
        "| " + " | ".join(page.t(f"models.col.{h}") for h in heads) + " |",
        "|" + "---|" * len(heads),
    ]
    for v in views:
        cells = (
            str(v.version),
            " ".join(f"`@{a}`" for a in v.aliases),
            _cell(v.gate),
            _cell(v.reason),
            _cell(v.lineage_text),
            v.created,
            f"[MLflow ↗]({v.link})",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(page: Page) -> None:
    settings = page.settings
    st.subheader(page.t("models.registered"))
    try:
        views = _versions(settings.tracking_uri, settings.mlflow_ui, page.spec.name)
    except MlflowUnavailableError as exc:
        note_down(ServiceDownError("mlflow", settings.tracking_uri, str(exc)))
        return
    if not views:
        st.caption(page.t("models.none"))
    else:
        st.markdown(versions_table(page, views))
    st.link_button(page.t("models.open"), f"{settings.mlflow_ui}/#/models/{page.spec.name}")
