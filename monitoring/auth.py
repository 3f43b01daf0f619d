"""Ingest authentication: a bearer token, or an HMAC-SHA256 signature of the raw body."""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from castml.errors import CastmlError
from castml.web.asgi import check_json_content_type, read_body
from monitoring.settings import CollectorSettings

SIGNATURE_HEADER = "x-castml-signature"
BODY_SETTING = "CASTML_COLLECTOR_MAX_BODY_BYTES"  # named in a 413's answer


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


async def authenticated_body(request: Request, settings: CollectorSettings) -> bytes:
    """A write endpoint's body (feedback, observations): JSON by its Content-Type (415),
    within the size limit (413, before it is all read), then signed or bearer-authenticated
    (401) against that raw body."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    check_json_content_type(headers)
    body = await read_body(
        headers,
        request.receive,  # type: ignore[arg-type]  # Starlette's Message type
        settings.collector_max_body_bytes,
        BODY_SETTING,
    )
    check(headers, body, settings.collector_token, settings.collector_hmac_key)
    return body
