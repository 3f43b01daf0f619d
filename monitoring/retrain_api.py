"""`POST /v1/retrain`: a retrain request, or an Alertmanager webhook (token-protected).

Alertmanager posts `{"status": "firing", "alerts": [{"labels": {...}, "annotations": {...}}]}`;
each firing alert becomes a request for its `project` label, with the reason from its
`retrain_reason` label (default `drift`) and the evidence from its `evidence_uri`
annotation. Resolved notifications decide nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from castml.web.asgi import check_json_content_type, parse_json, read_body
from castml.web.starlette_errors import install
from monitoring import auth
from monitoring.policy import BadRetrainRequestError, RetrainPolicy, RetrainRequest

HTTP_STATUS = {"started": 202, "skipped": 200, "failed": 502}
# An Alertmanager notification is a few KiB; a larger body is refused before it is read.
MAX_BODY_BYTES = 1 << 20


def requests_from(payload: Any) -> list[RetrainRequest]:
    if not isinstance(payload, dict):
        raise BadRetrainRequestError("body must be a JSON object")
    if "alerts" in payload:  # Alertmanager webhook (version 4)
        out: list[RetrainRequest] = []
        seen: set[tuple[str, str]] = set()
        for alert in payload["alerts"]:
            labels, notes = alert.get("labels", {}), alert.get("annotations", {})
            if alert.get("status", payload.get("status")) != "firing" or "project" not in labels:
                continue
            key = (labels["project"], labels.get("retrain_reason", "drift"))
            if key in seen:  # one grouped notification may carry the same alert per version
                continue
            seen.add(key)
            out.append(
                RetrainRequest(
                    project=key[0],
                    reason=key[1],
                    evidence_uri=notes.get("evidence_uri") or alert.get("generatorURL"),
                    evidence={"alertname": labels.get("alertname", ""), "labels": labels},
                    requested_by="alertmanager",
                )
            )
        return out
    if not isinstance(payload.get("project"), str) or not isinstance(payload.get("reason"), str):
        raise BadRetrainRequestError("a retrain request needs 'project' and 'reason'")
    evidence = payload.get("evidence") or {}
    return [
        RetrainRequest(
            project=payload["project"],
            reason=payload["reason"],
            evidence_uri=payload.get("evidence_uri"),
            evidence=evidence if isinstance(evidence, dict) else {"value": evidence},
            requested_at=payload.get("requested_at"),
            requested_by="http",
        )
    ]


def routes(policy: RetrainPolicy, token: str | None) -> list[Route]:
    """`POST /v1/retrain` and `GET /v1/retrain/decisions`, both behind the bearer token.

    Also mounted into the collector's app: in the cluster, Alertmanager posts to the
    collector's Service (one Deployment, one port). Errors answer through the one
    contract (`castml.web.starlette_errors.install` on the app that mounts these).
    """

    async def retrain(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        check_json_content_type(headers)
        body = await read_body(headers, request.receive, MAX_BODY_BYTES)  # type: ignore[arg-type]
        auth.check(headers, body, token, None)
        wanted = requests_from(parse_json(body))
        # decide() may block (a KFP API call, an fsync): keep the event loop free.
        decisions = [(await asyncio.to_thread(policy.decide, r)).to_dict() for r in wanted]
        status = max((HTTP_STATUS[d["outcome"]] for d in decisions), default=200)
        return Response(
            orjson.dumps({"decisions": decisions}), status, media_type="application/json"
        )

    async def decisions(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        auth.check(headers, b"", token, None)
        project = request.query_params.get("project")
        rows = await asyncio.to_thread(policy.history, project)
        return Response(orjson.dumps(rows), media_type="application/json")

    return [
        Route("/v1/retrain", retrain, methods=["POST"]),
        Route("/v1/retrain/decisions", decisions),
    ]


def build_app(policy: RetrainPolicy, token: str | None) -> Starlette:
    app = Starlette(routes=routes(policy, token))
    install(app)
    return app
