"""`castml mlflow up` with an external MLflow (CASTML_MLFLOW_URI), and the embedded
server's environment against the chart's."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from castml.cli.main import app
from castml.errors import MlflowUnavailableError
from castml.mlflow_server import SERVER_ENV
from tests.conftest import REPO_ROOT
from tests.support.ports import free_port


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[str]:
    """A real HTTP server on loopback that answers /health as MLflow does."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_mlflow_up_with_an_unreachable_external_uri_fails_and_says_so(tmp_path: object) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {"CASTML_MLFLOW_URI": uri, "CASTML_MLFLOW_TIMEOUT_S": "2", "CASTML_HOME": str(tmp_path)}
    result = CliRunner().invoke(app, ["mlflow", "up"], env=env)
    assert result.exit_code != 0 and "MLflow is up" not in result.output
    assert isinstance(result.exception, MlflowUnavailableError)
    assert uri in str(result.exception) and "CASTML_MLFLOW_URI" in str(result.exception)


def test_mlflow_up_with_a_reachable_external_uri_says_it_is_external(
    answering: str, tmp_path: object
) -> None:
    env = {"CASTML_MLFLOW_URI": answering, "CASTML_HOME": str(tmp_path)}
    result = CliRunner().invoke(app, ["mlflow", "up"], env=env)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "external" in text and answering in text and "nothing started" in text


def test_the_embedded_mlflow_gets_the_charts_webhook_settings() -> None:
    template = (REPO_ROOT / "charts/castml/templates/mlflow.yaml").read_text()
    for name in ("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"):
        found = re.search(rf"- name: {name}\s+value: \"?([^\"\n]+)\"?", template)
        assert found is not None, name
        assert SERVER_ENV[name] == found.group(1)
