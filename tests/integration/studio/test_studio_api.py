"""The studio's REST surface on a real uvicorn: health, OpenAPI, upload, draft spec, auth, CORS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from castml.spec import load_spec
from tests.integration.studio.conftest import OBD_ROWS, Studio

pytestmark = pytest.mark.integration

PATHS = (
    "/api/health",
    "/api/upload",
    "/api/upload/{file_id}/spec",
    "/api/train",
    "/api/train/status/{run_id}",
    "/api/train/runs",
    "/api/report/feature-importance/{run_id}",
    "/api/report/correlation/{run_id}",
    "/api/report/ai/{run_id}",
    "/api/report/generate-pdf/{run_id}",
    "/api/report/pdf/{run_id}",
    "/api/performance/{run_id}",
    "/api/dashboard/si",
    "/api/dashboard/client",
)


def test_health_and_openapi_publish_every_path(studio: Studio) -> None:
    health = httpx.get(f"{studio.url}/api/health").json()
    assert health["status"] == "ok" and health["mlflow"] == "reachable"
    published = httpx.get(f"{studio.url}/openapi.json").json()["paths"]
    assert set(PATHS) <= set(published)
    upload_body = published["/api/upload"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload_body


def test_open_bandit_upload_answers_the_frontends_fields(
    studio: Studio, open_bandit_upload: dict[str, Any]
) -> None:
    answer = open_bandit_upload
    assert answer["filename"] == "open_bandit_men.csv"
    assert answer["rows"] == OBD_ROWS and answer["columns"] == len(answer["column_names"])
    assert answer["info"]["totalRows"] == OBD_ROWS
    assert 0 < answer["info"]["clickedOne"] < OBD_ROWS / 50  # about 0.5 % clicks
    assert answer["info"]["ctr"] == pytest.approx(answer["info"]["clickedOne"] / OBD_ROWS)
    assert len(answer["preview"]) == 10 and "click" in answer["preview"][0]
    assert answer["target"] == "click"
    # the constant propensity of the uniform-random policy is named, not silently dropped
    assert any("propensity_score" in w for w in answer["validation"]["warnings"])


def test_the_draft_spec_is_stored_with_the_file_and_loads_as_a_project(
    studio: Studio, open_bandit_upload: dict[str, Any]
) -> None:
    file_id = open_bandit_upload["file_id"]
    answer = httpx.get(f"{studio.url}/api/upload/{file_id}/spec").json()
    spec = load_spec(answer["path"])  # the very file the pipeline loads
    assert spec.target == "click" and spec.time_column == "timestamp"
    kinds = {f.name: f.dtype for f in spec.features}
    assert kinds["item_id"] == "categorical" and kinds["user_feature_0"] == "categorical"
    assert kinds["affinity_shown"] in {"float", "int"}
    assert "propensity_score" in spec.ignore
    stored = yaml.safe_load(Path(answer["path"]).read_text())
    assert stored["source"]["path"].endswith(f"/{file_id}/open_bandit_men.csv")


def test_write_endpoints_need_the_token(studio: Studio, open_bandit_csv: Any) -> None:
    refused = studio.upload("a.csv", b"click,x\n0,1\n1,2\n", headers={})
    assert refused.status_code == 401
    assert "Bearer" in refused.json()["error"]
    wrong = studio.upload("a.csv", b"click,x\n0,1\n", headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 401
    train = httpx.post(f"{studio.url}/api/train", json={"file_id": "0" * 12})
    assert train.status_code == 401
    pdf = httpx.post(f"{studio.url}/api/report/generate-pdf/abc", json={})
    assert pdf.status_code == 401


def test_cors_allows_the_frontends_origin_only(studio: Studio) -> None:
    allowed = httpx.options(
        f"{studio.url}/api/train/runs",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"},
    )
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
    other = httpx.options(
        f"{studio.url}/api/train/runs",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in other.headers


def test_without_a_token_only_a_loopback_bind_starts(tmp_path: Any, caplog: Any) -> None:
    from studio.app import InsecureBindError, create_app
    from studio.settings import StudioSettings

    with caplog.at_level("WARNING", logger="studio"):
        create_app(StudioSettings(home=tmp_path, studio_token=None, studio_host="127.0.0.1"))
    assert "CASTML_STUDIO_TOKEN is unset" in caplog.text
    with pytest.raises(InsecureBindError, match="without CASTML_STUDIO_TOKEN"):
        create_app(StudioSettings(home=tmp_path, studio_token=None, studio_host="0.0.0.0"))
