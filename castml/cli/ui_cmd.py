"""`castml ui`: the Streamlit web UI on 127.0.0.1 (settings: ui.settings.UiSettings, `CASTML_*`).

It becomes `python -m streamlit run ui/app.py` (an exec: signals reach the server itself),
bound to the settings' host and port, headless, without usage statistics or a file watcher
(the image's root is read-only), and with Streamlit's upload limit at its 1 MB minimum (the
Predict tab takes JSON shots of `CASTML_SHOT_UPLOAD_MAX_BYTES` at most). The app reads the
same settings from the environment this command passes on.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from castml.errors import CastmlError

APP = Path(__file__).resolve().parents[2] / "ui" / "app.py"


class UiUnavailableError(CastmlError):
    """The UI cannot start here (Streamlit missing, or the app file is not shipped)."""


def streamlit_command(host: str, port: int) -> list[str]:
    """The exact command the chart's UI container runs too."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--server.maxUploadSize",
        "1",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]


def ui(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind (default CASTML_UI_HOST: 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default CASTML_UI_PORT: 8501).")] = None,
) -> None:
    """Run the web UI: predict, analysis, assistant, history, models (Korean and English)."""
    import importlib.util

    from castml.settings import load_settings
    from ui.settings import UiSettings

    settings = load_settings(UiSettings, ui_host=host, ui_port=port)
    if importlib.util.find_spec("streamlit") is None:
        raise UiUnavailableError("streamlit is not installed: pip install 'castml[ui]'")
    if not APP.is_file():
        raise UiUnavailableError(f"the UI app is missing: {APP}")
    env = {
        **os.environ,
        "CASTML_UI_HOST": settings.ui_host,
        "CASTML_UI_PORT": str(settings.ui_port),
    }
    print(f"castml ui: http://{settings.ui_host}:{settings.ui_port}", flush=True)
    # Become Streamlit rather than wait on it: a SIGTERM (the kubelet's, a test's, `castml
    # down`'s) then reaches the server itself, and no orphan keeps the port.
    command = streamlit_command(settings.ui_host, settings.ui_port)
    os.execve(command[0], command, env)
