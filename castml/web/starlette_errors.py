"""The error contract (`castml.web.errors`) for Starlette and FastAPI apps.

`install(app)` makes a Starlette or FastAPI app answer exactly as the lean ASGI core
does: `CastmlError`s with their status, Starlette's own 404/405 (405 with `Allow`)
and FastAPI's request-validation errors (422, one detail per field) in the same body
shape, anything else a bare 500.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from castml.errors import CastmlError
from castml.web.errors import error_parts


def as_response(exc: BaseException) -> Response:
    status, body, headers = error_parts(exc)
    return Response(body, status, headers=headers, media_type="application/json")


async def _through_the_contract(_: Request, exc: Exception) -> Response:
    return as_response(exc)


async def _http_exception(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = CastmlError(str(exc.detail))
    error.status_code = exc.status_code
    status, body, headers = error_parts(error)
    headers.update(exc.headers or {})  # Starlette's 405 carries Allow
    return Response(body, status, headers=headers, media_type="application/json")


async def _validation_error(_: Request, exc: Exception) -> Response:
    errors: list[dict[str, Any]] = list(getattr(exc, "errors", list)())
    details = [
        {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "problem": e["msg"]}
        for e in errors
    ]
    listed = "; ".join(f"{d['field']}: {d['problem']}" for d in details[:10])
    error = CastmlError(f"{len(details)} invalid field(s): {listed}")
    error.status_code = 422
    status, body, headers = error_parts(error)
    payload = orjson.loads(body)
    payload["type"] = "InvalidFieldsError"
    payload["details"] = details
    return Response(orjson.dumps(payload), status, headers=headers, media_type="application/json")


def install(app: Starlette) -> None:
    """Route every error of `app` through the one contract."""
    app.add_exception_handler(CastmlError, _through_the_contract)
    app.add_exception_handler(HTTPException, _http_exception)
    try:
        from fastapi.exceptions import RequestValidationError
    except ImportError:  # a Starlette-only image
        pass
    else:
        app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _through_the_contract)  # a bug: a bare 500
