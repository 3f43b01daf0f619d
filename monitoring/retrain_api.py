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

from castml.errors import CastmlError
from monitoring import auth
from monitoring.policy import BadRetrainRequestError, RetrainPolicy, RetrainRequest

HTTP_STATUS = {"started": 202, "skipped": 200, "failed": 502}


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
    collector's Service (one Deployment, one port).
    """

    def refused(exc: CastmlError) -> Response:
        return Response(
            orjson.dumps({"error": str(exc)}), exc.status_code, media_type="application/json"
        )

    async def retrain(request: Request) -> Response:
        body = await request.body()
        try:
            auth.check({k.lower(): v for k, v in request.headers.items()}, body, token, None)
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise BadRetrainRequestError(f"body is not JSON: {exc}") from exc
            wanted = requests_from(payload)
            # decide() may block (a KFP API call, an fsync): keep the event loop free.
            decisions = [(await asyncio.to_thread(policy.decide, r)).to_dict() for r in wanted]
        except CastmlError as exc:
            return refused(exc)
        status = max((HTTP_STATUS[d["outcome"]] for d in decisions), default=200)
        return Response(
            orjson.dumps({"decisions": decisions}), status, media_type="application/json"
        )

    async def decisions(request: Request) -> Response:
        try:
            headers = {k.lower(): v for k, v in request.headers.items()}
            auth.check(headers, b"", token, None)
        except CastmlError as exc:
            return refused(exc)
        project = request.query_params.get("project")
        rows = await asyncio.to_thread(policy.history, project)
        return Response(orjson.dumps(rows), media_type="application/json")

    return [
        Route("/v1/retrain", retrain, methods=["POST"]),
        Route("/v1/retrain/decisions", decisions),
    ]


def build_app(policy: RetrainPolicy, token: str | None) -> Starlette:
    return Starlette(routes=routes(policy, token))
