"""What every tab shares: settings, the spec's form fields, the language, session-state keys,
and the banner that names a server that is down."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import streamlit as st

from castml.spec import ProjectSpec
from ui.i18n import Language, t
from ui.service_calls import Health, Service, ServiceDownError, check_health
from ui.settings import UiSettings
from ui.shot_form import FormField

# Session-state keys (one place, so tabs and tests agree on them).
LANGUAGE_KEY: Final = "language"
SHOT_KEY: Final = "shot"  # the last shot sent: dict[str, float]
PREDICTION_KEY: Final = "prediction"  # ui.service_calls.Prediction for SHOT_KEY
EXPLANATION_KEY: Final = "explanation"  # ui.service_calls.Explanation for SHOT_KEY
REPORT_KEY: Final = "agent_report"  # ui.agent.AgentReport for SHOT_KEY (the chat's context)
CHAT_KEY: Final = "chat"  # list of chat turns
DOWN_KEY: Final = "down"  # service -> (url, reason), from calls made in this run
FIELD_PREFIX: Final = "field."


@dataclass
class Page:
    settings: UiSettings
    spec: ProjectSpec
    fields: list[FormField]
    language: Language

    def t(self, key: str, **values: object) -> str:
        return t(key, self.language, **values)

    @property
    def by_name(self) -> dict[str, FormField]:
        return {f.name: f for f in self.fields}


def state(key: str, default: Any = None) -> Any:
    return st.session_state.get(key, default)


def note_down(error: ServiceDownError) -> None:
    """Remember a server that failed a call in this run; the banner names it."""
    down: dict[str, tuple[str, str]] = st.session_state.setdefault(DOWN_KEY, {})
    down[error.service] = (error.url, error.reason)


@st.cache_data(ttl=5, show_spinner=False)
def _health(settings_json: str) -> list[Health]:
    return check_health(UiSettings.model_validate_json(settings_json))


def banner(page: Page, services: tuple[Service, ...]) -> None:
    """One red line per server that is down: from a health probe, or a call that failed."""
    health = _health(page.settings.model_dump_json())
    down = {h.service: (h.url, h.reason) for h in health if not h.up and h.service in services}
    down.update(st.session_state.pop(DOWN_KEY, {}))
    for service, (url, reason) in down.items():
        st.error(
            page.t("banner.down", service=page.t(f"service.{service}"), url=url, reason=reason),
            icon="🚫",
        )
