"""Errors a user can cause, each with the HTTP status a server would answer.

The CLI prints them as one line; servers map them to a response with one handler.
"""

from __future__ import annotations


class CastmlError(Exception):
    """Base class: a problem the user can fix, reported without a traceback."""

    status_code = 400


class SpecError(CastmlError):
    """A project spec is missing or does not describe a valid project."""


class DataValidationError(CastmlError):
    """A data set fails validation against its spec; `problems` names each one."""

    status_code = 422

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        listed = "; ".join(problems[:20])
        more = f" (+{len(problems) - 20} more)" if len(problems) > 20 else ""
        super().__init__(
            f"data set failed validation with {len(problems)} problem(s): {listed}{more}"
        )


class MlflowUnavailableError(CastmlError):
    """The MLflow tracking server cannot be reached."""

    status_code = 503

    def __init__(self, uri: str, reason: str) -> None:
        self.uri = uri
        super().__init__(f"MLflow at {uri} is unreachable: {reason}")


class RegistryError(CastmlError):
    """A registry operation (promote, rollback, lookup) cannot be done."""

    status_code = 404
