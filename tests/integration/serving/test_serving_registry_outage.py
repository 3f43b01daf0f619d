"""Serving during an MLflow outage (issue 10 §5): a cached, digest-verified version pinned by
number starts and serves without MLflow, for the predictor and the explainer; what does need
MLflow answers 503 with Retry-After, never 422.

The outage is MLflow's URI answering nothing: the version is cached from the session's real
MLflow, then the servers start with CASTML_MLFLOW_URI at a port nobody listens on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from castml.cli.local_processes import free_port, start_server
from castml.spec import load_spec
from tests.unit.serving.support import valid_record

pytestmark = pytest.mark.integration


def test_a_cached_version_serves_while_mlflow_is_down(
    registered_diecast: Any, tmp_path: Path
) -> None:
    version = str(registered_diecast.versions[0])
    other = str(registered_diecast.versions[1])
    home = {"CASTML_HOME": str(tmp_path)}
    up = {**home, "CASTML_MLFLOW_URI": registered_diecast.uri, "CASTML_MODEL_VERSION": version}
    start_server("predictor", up, tmp_path / "logs").stop()  # caches the version
    digests = tmp_path / "serving-cache" / "diecast" / version / "digests.json"
    assert '"recorded": true' in digests.read_text()

    down = {**home, "CASTML_MLFLOW_URI": f"http://127.0.0.1:{free_port()}"}
    predictor = start_server("predictor", {**down, "CASTML_MODEL_VERSION": version}, tmp_path)
    servers = [predictor]
    try:
        meta = httpx.get(f"{predictor.url}/v2/models/diecast").json()
        assert meta["versions"] == [version]
        for ref in (other, "champion"):  # both need MLflow: transient, so 503
            refused = httpx.post(
                f"{predictor.url}/v2/repository/models/diecast/load",
                json={"parameters": {"version": ref}},
                timeout=60,
            )
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["retry-after"]) > 0
            assert "unreachable" in refused.json()["error"]
        explainer = start_server("explainer", down, tmp_path, predictor=predictor)
        servers.append(explainer)
        explained = httpx.post(
            f"{explainer.url}/v1/models/diecast:explain",
            json={"features": valid_record(load_spec("diecast")), "chart": False},
            timeout=120,
        )
        assert explained.status_code == 200, explained.text
        assert explained.json()["model_version"] == f"diecast/{version}"
    finally:
        for server in reversed(servers):
            server.stop()
