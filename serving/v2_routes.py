"""The v2 (Open Inference Protocol) route table that the predictor and the knowledge role
share: health, server and model metadata, infer, and the repository extension."""

from __future__ import annotations

from typing import Protocol

from castml.web.asgi import App, Handler, Request, Response


class V2Handlers(Protocol):
    """What a v2 server answers; `infer` is passed apart (the roles' bodies differ)."""

    async def live(self, request: Request) -> Response: ...
    async def ready(self, request: Request) -> Response: ...
    async def server_metadata(self, request: Request) -> Response: ...
    async def metrics_endpoint(self, request: Request) -> Response: ...
    async def metadata(self, request: Request) -> Response: ...
    async def model_ready(self, request: Request) -> Response: ...
    async def repository_index(self, request: Request) -> Response: ...
    async def load(self, request: Request) -> Response: ...


def add_v2_routes(app: App, server: V2Handlers, infer: Handler) -> None:
    app.route("GET", "/v2/health/live", server.live)
    app.route("GET", "/v2/health/ready", server.ready)
    app.route("GET", "/v2", server.server_metadata)
    app.route("GET", "/metrics", server.metrics_endpoint)
    for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        app.route("GET", prefix, server.metadata)
        app.route("GET", f"{prefix}/ready", server.model_ready)
        app.route("POST", f"{prefix}/infer", infer)
    app.route("POST", "/v2/repository/index", server.repository_index)
    app.route("POST", "/v2/repository/models/{model}/load", server.load)
