"""Typed errors of the serving roles, each with its HTTP status.

The general ones (bad request, 404, 405, 413, 415, field problems) live in the web core,
`castml.web.errors`, with the one contract that turns any of them into an answer; they
are re-exported here so that a serving module imports its errors from one place.
"""

from __future__ import annotations

from castml.errors import CastmlError
from castml.web.errors import (
    BadRequestError,
    EmptyBodyError,
    FieldProblem,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    UnavailableError,
    UnsupportedMediaTypeError,
)
from castml.web.errors import InvalidFieldsError as InvalidFeaturesError

__all__ = [
    "BadRequestError",
    "EmptyBodyError",
    "FieldProblem",
    "InvalidFeaturesError",
    "LoadInProgressError",
    "MethodNotAllowedError",
    "MethodUnavailableError",
    "NotFoundError",
    "NotReadyError",
    "PayloadTooLargeError",
    "PredictorRefusedError",
    "PredictorUnavailableError",
    "ServingError",
    "UnsupportedMediaTypeError",
    "UpstreamError",
    "VersionRefusedError",
    "WebhookRejectedError",
]

# Every error a caller can cause is a CastmlError; the alias keeps serving's `except`s short.
ServingError = CastmlError


class MethodUnavailableError(CastmlError):
    """An explanation method needs an optional extra that is not installed here."""

    status_code = 422


class VersionRefusedError(CastmlError):
    """A load request named a version that failed to load or failed its smoke prediction."""

    status_code = 422


class LoadInProgressError(CastmlError):
    status_code = 409


class NotReadyError(UnavailableError):
    """No model is loaded yet; the caller should retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class UpstreamError(CastmlError):
    """The predictor behind the transformer or explainer failed (it answered 5xx)."""

    status_code = 502


class PredictorUnavailableError(UnavailableError):
    """The predictor cannot be reached, did not answer in time, or is not ready yet.

    503, not 502: the request may well succeed once the predictor is back, so the
    caller should retry.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)


class WebhookRejectedError(CastmlError):
    """A registry webhook with a missing or wrong signature, or a stale timestamp."""

    status_code = 401


class PredictorRefusedError(CastmlError):
    """The predictor answered 4xx: the caller's error stays the caller's error, same status."""

    def __init__(self, status_code: int, message: str) -> None:
        self.status_code = status_code
        super().__init__(message)
