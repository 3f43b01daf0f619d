"""Errors a user can cause in the knowledge base, each with the HTTP status a server answers."""

from __future__ import annotations

from castml.errors import CastmlError


class CorpusError(CastmlError):
    """A corpus document cannot be read; the message names the file."""

    status_code = 422

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        super().__init__(f"corpus document {self.path} cannot be read: {reason}")


class IndexMismatchError(CastmlError):
    """An index directory whose files do not match its manifest (or is incomplete)."""

    status_code = 409


class KnowledgeQueryError(CastmlError):
    """A query that cannot be answered as given (empty, too long, not text)."""

    status_code = 400
