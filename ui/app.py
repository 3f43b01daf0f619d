"""The castml web UI (Streamlit): `castml ui`, or `streamlit run ui/app.py`.

Five tabs (Predict, Analysis, Assistant, History, Models) in Korean or English, Korean
when the browser asks for it. Settings come from the environment (ui.settings.UiSettings,
`CASTML_*`). A server that is down is a red banner naming it, above the tabs.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

# `streamlit run ui/app.py` puts ui/ itself on sys.path, not the repository root.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from castml.spec import load_spec  # noqa: E402
from ui.i18n import LANGUAGE_NAMES, LANGUAGES, pick_language, t  # noqa: E402
from ui.service_calls import Service  # noqa: E402
from ui.settings import UiSettings  # noqa: E402
from ui.shot_form import form_fields  # noqa: E402
from ui.tabs import (  # noqa: E402
    analysis_tab,
    assistant_tab,
    history_tab,
    models_tab,
    predict_tab,
)
from ui.tabs.page import LANGUAGE_KEY, Page, banner  # noqa: E402

log = logging.getLogger("castml.ui")
TABS: list[tuple[str, Callable[[Page], None]]] = [
    ("tab.predict", predict_tab.render),
    ("tab.analysis", analysis_tab.render),
    ("tab.assistant", assistant_tab.render),
    ("tab.history", history_tab.render),
    ("tab.models", models_tab.render),
]
# The servers the page calls; the banner names any of them that is down.
CALLED: tuple[Service, ...] = ("transformer", "explainer", "knowledge", "collector", "mlflow")


def _language(settings: UiSettings) -> None:
    if LANGUAGE_KEY not in st.session_state:
        headers = st.context.headers
        asked = headers.get("Accept-Language") if headers else None
        st.session_state[LANGUAGE_KEY] = pick_language(
            asked, st.context.locale, fallback=settings.language
        )
    st.sidebar.radio(
        t("app.language", st.session_state[LANGUAGE_KEY]),
        list(LANGUAGES),
        format_func=lambda code: LANGUAGE_NAMES[code],
        key=LANGUAGE_KEY,
    )


def _tab(render: Callable[[Page], None], page: Page) -> None:
    """A tab that fails shows one line, never a traceback (the log keeps it)."""
    try:
        render(page)
    except Exception as exc:  # the last line of defence of one tab
        log.exception("tab failed")
        st.error(f"{type(exc).__name__}: {str(exc)[:300]}")


def main() -> None:
    settings = UiSettings()
    st.set_page_config(page_title="castml", page_icon="🏭", layout="wide")
    _language(settings)
    spec = load_spec(settings.project)
    page = Page(settings, spec, form_fields(spec), st.session_state[LANGUAGE_KEY])
    st.title(page.t("app.title"))
    st.caption(page.t("app.caption", project=spec.name))
    top = st.container()  # filled last: calls made by the tabs below name their servers too
    for (_key, render), tab in zip(TABS, st.tabs([page.t(k) for k, _ in TABS]), strict=True):
        with tab:
            _tab(render, page)
    with top:
        banner(page, CALLED)


main()
