"""The one error contract of every castml server: typed errors and the body they answer.

Every error a caller can cause is a `CastmlError` subclass carrying its HTTP status.
`error_parts` is the only place one becomes an answer, for the lean ASGI core
(`castml.web.asgi`) and for Starlette/FastAPI apps (`castml.web.starlette_errors`) alike:

    {"error": "<one line naming the problem>", "type": "<ErrorClass>", "details": [...]}

503 answers carry `Retry-After`; 405 answers carry `Allow` (RFC 9110 §15.5.6).
Anything that is not a `CastmlError` is a bug: it answers 500 without internals.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from castml.errors import CastmlError

log = logging.getLogger("castml.web")

DEFAULT_RETRY_AFTER_S = 1


class BadRequestError(CastmlError):
    """Malformed body: not JSON, wrong structure, wrong datatype, shape or length."""


class EmptyBodyError(BadRequestError):
    def __init__(self) -> None:
        super().__init__("the request body is empty; send a JSON object")


class PayloadTooLargeError(CastmlError):
    status_code = 413

    def __init__(self, limit: int, setting: str = "") -> None:
        where = f" ({setting})" if setting else ""
        super().__init__(f"the request body is larger than the limit of {limit} bytes{where}")


class UnsupportedMediaTypeError(CastmlError):
    status_code = 415


class NotFoundError(CastmlError):
    """Unknown route, model, model version or resource."""

    status_code = 404


class MethodNotAllowedError(CastmlError):
    status_code = 405

    def __init__(self, method: str, path: str, allowed: list[str]) -> None:
        self.allowed = sorted(allowed)
        super().__init__(f"{method} is not allowed on {path} (use {', '.join(self.allowed)})")


class UnavailableError(CastmlError):
    """Overloaded or a dependency is down: the caller should retry after `retry_after_s`."""

    status_code = 503

    def __init__(self, message: str, retry_after_s: int = DEFAULT_RETRY_AFTER_S) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


@dataclass(frozen=True)
class FieldProblem:
    """One named problem of a request: the field, what is wrong, and which instance."""

    field: str
    problem: str
    instance: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "problem": self.problem}
        if self.instance is not None:
            out["instance"] = self.instance
        return out


class InvalidFieldsError(BadRequestError):
    """One or more fields fail validation; each is named in `details`."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        listed = "; ".join(
            (f"instance {p.instance}: " if p.instance is not None else "")
            + f"{p.field}: {p.problem}"
            for p in problems[:10]
        )
        more = f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"{len(problems)} invalid field(s): {listed}{more}")


def details_of(exc: CastmlError) -> list[dict[str, Any]]:
    problems = getattr(exc, "problems", None)
    if problems and all(isinstance(p, FieldProblem) for p in problems):
        return [p.as_dict() for p in problems]
    if problems and all(isinstance(p, str) for p in problems):
        return [{"problem": p} for p in problems]
    return []


def error_body(exc: CastmlError) -> dict[str, Any]:
    return {"error": str(exc), "type": type(exc).__name__, "details": details_of(exc)}


def error_headers(exc: BaseException) -> dict[str, str]:
    headers: dict[str, str] = {}
    status = getattr(exc, "status_code", 500)
    if status == 503:
        headers["Retry-After"] = str(getattr(exc, "retry_after_s", DEFAULT_RETRY_AFTER_S))
    if isinstance(exc, MethodNotAllowedError):
        headers["Allow"] = ", ".join(exc.allowed)
    return headers


INTERNAL_ERROR = orjson.dumps(
    {"error": "internal server error", "type": "InternalError", "details": []}
)


def error_parts(exc: BaseException) -> tuple[int, bytes, dict[str, str]]:
    """(status, JSON body, headers) for any exception: the one error contract."""
    if isinstance(exc, CastmlError):
        body = error_body(exc)
        try:
            encoded = orjson.dumps(body)
        except TypeError:  # text that is no Unicode (a lone surrogate) echoed from a request
            encoded = json.dumps(body, ensure_ascii=True).encode()
        return exc.status_code, encoded, error_headers(exc)
    log.error("unhandled error", exc_info=exc)
    return 500, INTERNAL_ERROR, {}
