"""Typed errors a caller of the serving endpoints can cause, each with its HTTP status.

One handler (`serving.asgi.error_response`) turns any of them into a JSON response;
anything else is a bug and answers 500 without leaking internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from castml.errors import CastmlError


class ServingError(CastmlError):
    """Base class: the request cannot be served as sent."""

    status_code = 400

    def body(self) -> dict[str, Any]:
        return {"error": str(self)}


class BadRequestError(ServingError):
    """Malformed body: not JSON, wrong structure, wrong datatype, shape or length."""


class EmptyBodyError(BadRequestError):
    def __init__(self) -> None:
        super().__init__("the request body is empty; send a JSON object")


class PayloadTooLargeError(ServingError):
    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than the limit of {limit} bytes")


class UnsupportedMediaTypeError(ServingError):
    status_code = 415


class NotFoundError(ServingError):
    """Unknown route, model or model version."""

    status_code = 404


class MethodNotAllowedError(ServingError):
    status_code = 405


@dataclass(frozen=True)
class FieldProblem:
    field: str
    problem: str
    instance: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "problem": self.problem}
        if self.instance is not None:
            out["instance"] = self.instance
        return out


class InvalidFeaturesError(ServingError):
    """One or more features fail validation against the project spec; each is named."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        listed = "; ".join(
            (f"instance {p.instance}: " if p.instance is not None else "")
            + f"{p.field}: {p.problem}"
            for p in problems[:10]
        )
        more = f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"{len(problems)} invalid field(s): {listed}{more}")

    def body(self) -> dict[str, Any]:
        return {"error": str(self), "problems": [p.as_dict() for p in self.problems]}


class MethodUnavailableError(ServingError):
    """An explanation method needs an optional extra that is not installed here."""

    status_code = 422


class VersionRefusedError(ServingError):
    """A load request named a version that failed to load or failed its smoke prediction."""

    status_code = 422


class LoadInProgressError(ServingError):
    status_code = 409


class NotReadyError(ServingError):
    """No model is loaded yet; the caller should retry."""

    status_code = 503


class UpstreamError(ServingError):
    """The predictor behind the transformer or explainer failed (it answered 5xx)."""

    status_code = 502


class PredictorUnavailableError(ServingError):
    """The predictor cannot be reached, did not answer in time, or is not ready yet.

    503, not 502: the request may well succeed once the predictor is back, so the
    caller should retry.
    """

    status_code = 503


class WebhookRejectedError(ServingError):
    """A registry webhook with a missing or wrong signature, or a stale timestamp."""

    status_code = 401


class PredictorRefusedError(ServingError):
    """The predictor answered 4xx: the caller's error stays the caller's error, same status."""

    def __init__(self, status_code: int, message: str) -> None:
        self.status_code = status_code
        super().__init__(message)
