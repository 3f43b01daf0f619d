"""Process wiring: build an app from settings and run it under uvicorn on loopback."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn

from castml.web.asgi import App
from serving.metrics import ServerMetrics
from serving.model_slot import ModelSlot
from serving.predictor import build_app
from serving.predictor_core import PredictorCore
from serving.settings import ServingSettings, serving_settings
from serving.version_store import LocalStore, RegistryStore, VersionSource, startup_spec
from serving.worker_pin import SharedPin

log = logging.getLogger("serving")


def version_source(settings: ServingSettings, project: str) -> VersionSource:
    if settings.model_store is not None:
        return LocalStore(settings.model_store)
    return RegistryStore(
        settings.tracking_uri, project, settings.version_cache, settings.mlflow_timeout_s
    )


def predictor_app(
    settings: ServingSettings, project: str | None = None, grpc_port: int | None = None
) -> tuple[App, PredictorCore]:
    """The predictor app; it pins its version at start-up (lifespan), before it answers."""
    # Bundled, or (a project trained from a spec path) the spec its version carries.
    spec = startup_spec(
        project or settings.project, settings.model_version, lambda n: version_source(settings, n)
    )
    slot = ModelSlot(version_source(settings, spec.name), spec, ServerMetrics("predictor"))
    predictor = PredictorCore(
        slot, settings.model_version, settings.max_batch_rows, settings.microbatch
    )
    if settings.logger_url:
        from serving.payload_log import payload_log  # httpx only when logging is on

        predictor.payload_log = payload_log(
            settings, spec.name, predictor.outputs, predictor.metrics
        )
    predictor.pin = SharedPin.from_env()
    app = build_app(predictor, settings.max_body_bytes)
    grpc_server: list[Any] = []
    background: list[asyncio.Task[None]] = []

    async def startup() -> None:
        pin = predictor.pin
        # A worker that joins later (or replaces a dead one) serves what the others serve.
        if not slot.ready:  # `python -m serving` loads before uvicorn starts (preload)
            ref = (pin.read() if pin else None) or settings.model_version
            slot.load_blocking(ref)
        version = slot.current.version
        log.warning("predictor: serving %s version %s", spec.name, version)
        if pin is not None:
            pin.report(version)
            background.append(asyncio.create_task(pin.follow(slot)))
        if grpc_port:
            from serving.grpc_server import start_grpc

            grpc_server.append(await start_grpc(predictor, settings.host, grpc_port))

    async def shutdown() -> None:
        for task in background:
            task.cancel()
        for server in grpc_server:
            await server.stop(grace=1.0)
        if predictor.payload_log is not None:
            # What the collector has not taken within the grace period counts as unsent.
            await asyncio.to_thread(predictor.payload_log.close, 3.0)

    app.on_startup.append(startup)
    app.on_shutdown.append(shutdown)
    return app, predictor


def predictor_from_env() -> App:
    """uvicorn factory for `--workers > 1`: each worker process builds its own app."""
    settings = serving_settings()
    return predictor_app(settings, settings.project, settings.grpc_port or None)[0]


def serve(app: App | str, host: str, port: int, workers: int = 1) -> None:
    uvicorn.run(
        app,
        host=host,
        port=port,
        workers=workers if isinstance(app, str) else None,
        factory=isinstance(app, str),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
