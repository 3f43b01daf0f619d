"""Ingest authentication: a bearer token, or an HMAC-SHA256 signature of the raw body."""

from __future__ import annotations

import hashlib
import hmac

from castml.errors import CastmlError

SIGNATURE_HEADER = "x-castml-signature"


class UnauthorizedError(CastmlError):
    """Missing or wrong credentials."""

    status_code = 401


def sign(key: str, body: bytes) -> str:
    """The header value a sender puts in `X-Castml-Signature`."""
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def check(headers: dict[str, str], body: bytes, token: str | None, hmac_key: str | None) -> None:
    """Raise UnauthorizedError unless one configured credential matches (constant time)."""
    if token is None and hmac_key is None:
        raise UnauthorizedError("server has no credentials configured; refusing all ingest")
    bearer = headers.get("authorization", "")
    if token is not None and bearer.startswith("Bearer "):
        if hmac.compare_digest(bearer[7:].encode(), token.encode()):
            return
        raise UnauthorizedError("invalid bearer token")
    signature = headers.get(SIGNATURE_HEADER)
    if hmac_key is not None and signature:
        if hmac.compare_digest(signature.encode(), sign(hmac_key, body).encode()):
            return
        raise UnauthorizedError("invalid HMAC signature")
    raise UnauthorizedError(
        "credentials required: 'Authorization: Bearer ...' or X-Castml-Signature"
    )
