"""The predictor's v2 REST adapter (+ the repository load extension) over `PredictorCore`.

It only decodes (JSON, or the binary tensor extension) and encodes; what infer,
metadata and load mean lives in `serving.predictor_core`, shared with gRPC. Every
response that touches the model names the version it used (`model_version` and the
`x-model-version` header); an infer reply carries `parameters.threshold`, as gRPC's does.
"""

from __future__ import annotations

import time
from typing import Any

from castml.protocol.v2_tensors import (
    BINARY_HEADER,
    lone_columns,
    output_json,
    requested_outputs,
    tensors_from_json,
)
from castml.web.asgi import App, Request, Response, encode_header, json_response
from serving.errors import BadRequestError
from serving.predictor_core import PredictorCore
from serving.v2_routes import add_v2_routes
from serving.version_store import ServedModel

VERSION_HEADER = b"x-model-version"


def _version_header(served: ServedModel) -> list[tuple[bytes, bytes]]:
    return [(VERSION_HEADER, served.version.encode())]


class RestPredictor:
    def __init__(self, core: PredictorCore) -> None:
        self.core = core

    def _served(self, request: Request) -> ServedModel:
        return self.core.served(request.params.get("model"), request.params.get("version"))

    async def infer(self, request: Request) -> Response:
        started = time.perf_counter()
        core = self.core
        served = self._served(request)
        body = request.body
        binary: memoryview | None = None
        json_length = request.headers.get(BINARY_HEADER)
        if json_length is not None:
            # isascii: "²".isdigit() is true, and int() refuses it.
            decimal = json_length.isascii() and json_length.isdigit()
            if not decimal or int(json_length) > len(body):
                raise BadRequestError(f"header {BINARY_HEADER} does not fit the body")
            binary = memoryview(body)[int(json_length) :]
            request.body = body[: int(json_length)]
        payload = request.json()
        # A typed version's one-row request (a window spec's ~100 one-value tensors) goes
        # straight to columns; anything else, and every refusal, through the tensors.
        columns = None
        if served.typed and binary is None:
            columns = lone_columns(payload, served.feature_names, core.max_rows)
        if columns is not None:
            x = core.encoded(served, columns)
        else:
            tensors = tensors_from_json(payload, binary, served.typed)
            x = core.matrix(served, tensors)
        wanted = requested_outputs(payload, served.outputs)
        given = payload.get("id") or request.headers.get("x-request-id")
        inference = await core.infer(served, x, wanted, str(given) if given else None, started)
        encoding = time.perf_counter()
        out = inference.outputs
        response = json_response(
            {
                "model_name": served.project,
                "model_version": served.version,
                "id": inference.request_id,
                "parameters": {"threshold": inference.threshold},
                "outputs": [output_json(name, out[name]) for name in wanted],
            },
            headers=[
                (VERSION_HEADER, served.version.encode()),
                (b"x-request-id", encode_header(inference.request_id)),
            ],
        )
        # binary: the request took the tensors path above
        logged = request.body if binary is None else core.logged_request(served, tensors)
        core.answered(inference, encoding, logged, response.body)
        return response

    async def live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def ready(self, request: Request) -> Response:
        served = self.core.slot.current  # NotReadyError -> 503 until the first load
        return json_response({"ready": True}, headers=_version_header(served))

    async def server_metadata(self, request: Request) -> Response:
        return json_response(self.core.server_metadata())

    async def metadata(self, request: Request) -> Response:
        served = self._served(request)
        return json_response(self.core.model_metadata(served), headers=_version_header(served))

    async def model_ready(self, request: Request) -> Response:
        served = self._served(request)
        return json_response(
            {"name": served.project, "ready": True, "version": served.version},
            headers=_version_header(served),
        )

    async def repository_index(self, request: Request) -> Response:
        rows = []
        if self.core.ready:
            served = self.core.slot.current
            rows.append({"name": served.project, "version": served.version, "state": "READY"})
        return json_response(rows)

    async def load(self, request: Request) -> Response:
        name = request.params.get("model")
        self.core.check_model(name)  # an unknown model is 404 whatever the body holds
        ref = _load_ref(request.json()) if request.body.strip() else None
        answer = await self.core.load(name, ref)
        return json_response(answer, headers=[(VERSION_HEADER, str(answer["version"]).encode())])

    async def metrics_endpoint(self, request: Request) -> Response:
        body, content_type = self.core.metrics.render()
        return Response(body, 200, content_type)


def _load_ref(payload: Any) -> str | None:
    """The version a load body names (`parameters.version`, or `version`); None: the default.

    A version that is present but empty is refused, never read as "the default".
    """
    if not isinstance(payload, dict):
        raise BadRequestError(
            'a load request is a JSON object, e.g. {"parameters": {"version": "3"}}'
        )
    params = payload.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise BadRequestError("'parameters' must be an object")
    raw = (params or {}).get("version")
    if raw is None:
        raw = payload.get("version")
    if raw is None:
        return None
    if not isinstance(raw, str | int) or isinstance(raw, bool) or not str(raw).strip():
        raise BadRequestError("'version' must be a version number or an alias name")
    return str(raw)


def build_app(core: PredictorCore, max_body_bytes: int) -> App:
    app = App(max_body_bytes)
    p = RestPredictor(core)
    add_v2_routes(app, p, p.infer)
    return app
