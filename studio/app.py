"""The studio API: the CTR users' frontend's REST and WebSocket paths, on FastAPI.

Paths and field names are fixed by the frontend (issue 15 §1). Every error goes through
the platform's one error contract (`castml.web.starlette_errors`); OpenAPI is published
at `/openapi.json` (docs at `/docs`). Write endpoints (upload, train, generate-pdf) need
`Authorization: Bearer $CASTML_STUDIO_TOKEN` when the token is set; unset, they are open
only on a loopback bind (a warning at start-up says so), and a non-loopback bind without
a token refuses to start.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.responses import Response

from castml import registry
from castml.errors import CastmlError
from castml.web import starlette_errors
from castml.web.errors import PayloadTooLargeError, UnsupportedMediaTypeError
from studio import dashboards, performance
from studio.alerts_ws import AlertLog, ApiStats, performance_socket
from studio.lstm_params import draft_family
from studio.reports.service import Reports
from studio.settings import StudioSettings
from studio.training_runs import TrainingRuns, TrainRequest
from studio.training_ws import FeedHub, training_socket
from studio.uploads import UploadError, UploadStore, limited_receive

log = logging.getLogger("studio")


class UnauthorizedError(CastmlError):
    status_code = 401


class InsecureBindError(CastmlError):
    """The studio would accept unauthenticated writes from the network."""


class PdfRequest(BaseModel):
    # the frontend's names
    includeCharts: bool = Field(True, description="The importance and correlation charts.")  # noqa: N815
    includeInsights: bool = Field(True, description="The AI report's insights.")  # noqa: N815
    includeActionPlan: bool = Field(True, description="The AI report's action plan.")  # noqa: N815


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


def create_app(settings: StudioSettings | None = None) -> FastAPI:
    settings = settings or StudioSettings()
    if not settings.studio_token:
        if not settings.binds_loopback:
            raise InsecureBindError(
                f"the studio binds {settings.studio_host} without CASTML_STUDIO_TOKEN: set a "
                "token (the chart always does) or bind 127.0.0.1"
            )
        log.warning(
            "CASTML_STUDIO_TOKEN is unset: upload, train and generate-pdf accept "
            "unauthenticated calls (loopback bind %s only)",
            settings.studio_host,
        )
    uploads = UploadStore(settings.data_dir)
    runs = TrainingRuns(settings, uploads)
    reports = Reports(settings, runs, uploads)
    models = performance.ServedModels(settings)
    stats, alerts = ApiStats(), AlertLog()
    hub = FeedHub(runs, settings.studio_poll_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await hub.close()
        runs.stop_all()
        await asyncio.to_thread(models.stop_all)

    app = FastAPI(
        title="castml studio",
        version="1.0",
        description="Upload a CTR table, train an LSTM pipeline run, watch it, read reports.",
        lifespan=lifespan,
    )
    starlette_errors.install(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.studio_cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
    )

    @app.middleware("http")
    async def count(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            response = await call_next(request)
        except Exception:
            stats.count(500)
            raise
        stats.count(response.status_code)
        return response

    def authorised(request: Request) -> None:
        if not settings.studio_token:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.encode(), settings.studio_token.encode()
        ):
            raise UnauthorizedError("this endpoint needs Authorization: Bearer <studio token>")

    writer = [Depends(authorised)]

    @app.get("/api/health", summary="Liveness and MLflow reachability")
    def health() -> dict[str, Any]:
        try:
            registry.ensure_reachable(settings.tracking_uri, timeout_s=2.0)
            mlflow = "reachable"
        except CastmlError as exc:
            mlflow = f"unreachable: {exc}"
        return {"status": "ok", "mlflow": mlflow, "family": draft_family(settings.studio_family)}

    @app.post("/api/upload", dependencies=writer, openapi_extra=UPLOAD_BODY)
    async def upload(request: Request) -> dict[str, Any]:
        """A multipart CSV (field `file`), profiled into a draft project spec."""
        limit = settings.studio_max_upload_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit + 64 * 1024:
            raise PayloadTooLargeError(limit, "CASTML_STUDIO_MAX_UPLOAD_BYTES")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise UnsupportedMediaTypeError("send the CSV as multipart/form-data, field 'file'")
        limited = Request(request.scope, limited_receive(request.receive, limit + 64 * 1024))
        async with limited.form(max_files=1, max_fields=10) as form:
            sent = form.get("file")
            if sent is None or isinstance(sent, str):
                raise UploadError("the form has no file field 'file'")
            content = await sent.read()
            name = sent.filename or ""
        if len(content) > limit:
            raise PayloadTooLargeError(limit, "CASTML_STUDIO_MAX_UPLOAD_BYTES")
        return await asyncio.to_thread(
            uploads.store, name, content, draft_family(settings.studio_family)
        )

    @app.get("/api/upload/{file_id}/spec")
    def upload_spec(file_id: str) -> dict[str, Any]:
        """The draft project spec drafted from the upload (types, bounds, target)."""
        return {
            "file_id": file_id,
            "path": str(uploads.spec_path(file_id)),
            "spec": uploads.spec(file_id),
        }

    @app.post("/api/train", dependencies=writer)
    def train(request: TrainRequest) -> dict[str, Any]:
        """Start a pipeline run (kfp.local) on the upload; `run_id` is the MLflow run id."""
        return runs.start(request)

    @app.get("/api/train/status/{run_id}")
    def train_status(run_id: str) -> dict[str, Any]:
        return runs.status(run_id)

    @app.get("/api/train/runs")
    def train_runs() -> list[dict[str, Any]]:
        return runs.listing()

    @app.websocket("/ws/training/{run_id}")
    async def training_ws(websocket: WebSocket, run_id: str) -> None:
        await training_socket(websocket, hub, run_id)

    @app.get("/api/report/feature-importance/{run_id}")
    def feature_importance(run_id: str, method: str = "combined") -> list[dict[str, Any]]:
        """Importance by `method`: rf, shap, lime or combined (their mean)."""
        return reports.importance(run_id, method)

    @app.get("/api/report/correlation/{run_id}")
    def correlation(run_id: str) -> dict[str, Any]:
        return reports.correlation(run_id)

    @app.get("/api/report/ai/{run_id}")
    def ai_report(run_id: str) -> dict[str, Any]:
        return reports.ai(run_id)

    @app.post("/api/report/generate-pdf/{run_id}", dependencies=writer)
    def generate_pdf(run_id: str, options: PdfRequest | None = None) -> dict[str, Any]:
        options = options or PdfRequest()
        return reports.generate_pdf(
            run_id, options.includeCharts, options.includeInsights, options.includeActionPlan
        )

    @app.get("/api/report/pdf/{run_id}", response_class=FileResponse)
    def report_pdf(run_id: str) -> FileResponse:
        return FileResponse(
            reports.pdf_path(run_id), media_type="application/pdf", filename=f"report-{run_id}.pdf"
        )

    @app.get("/api/performance/{run_id}")
    def run_performance(run_id: str) -> dict[str, Any]:
        """Holdout metrics and the served model's response time (ms)."""
        return performance.performance(reports, models, run_id, settings)

    @app.get("/api/dashboard/si")
    def dashboard_si() -> dict[str, Any]:
        return dashboards.si_dashboard(runs, stats, alerts)

    @app.get("/api/dashboard/client")
    def dashboard_client() -> dict[str, Any]:
        return dashboards.client_dashboard(runs, uploads, alerts)

    def watched(run_id: str | None) -> dict[str, Any] | None:
        if run_id is None:
            done = [r for r in runs.listing() if r["status"] == "completed"]
            if not done:
                return None
            run_id = str(done[0]["run_id"])
        return performance.performance(reports, models, run_id, settings)

    @app.websocket("/ws/performance")
    async def performance_ws(websocket: WebSocket, run_id: str | None = None) -> None:
        await performance_socket(websocket, settings, stats, alerts, watched, run_id)

    app.state.runs = runs
    app.state.uploads = uploads
    return app
