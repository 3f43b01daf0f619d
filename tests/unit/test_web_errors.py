"""The one error contract on a Starlette app (castml.web.starlette_errors): same body as the
lean ASGI core, 405 with Allow, 503 with Retry-After, a bug a bare 500."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from castml.web.errors import BadRequestError, UnavailableError
from castml.web.starlette_errors import install


async def refuses(_: Request) -> Response:
    raise BadRequestError("field 'x' is missing")


async def busy(_: Request) -> Response:
    raise UnavailableError("queue full", retry_after_s=7)


async def bug(_: Request) -> Response:
    raise RuntimeError("internal detail that must not leak")


def client() -> TestClient:
    app = Starlette(
        routes=[
            Route("/refuses", refuses, methods=["POST"]),
            Route("/busy", busy),
            Route("/bug", bug),
        ]
    )
    install(app)
    return TestClient(app, raise_server_exceptions=False)


def test_errors_answer_in_the_contracts_body() -> None:
    answer = client().post("/refuses")
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "field 'x' is missing",
        "type": "BadRequestError",
        "details": [],
    }


def test_405_carries_allow_and_503_retry_after() -> None:
    wrong = client().get("/refuses")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert set(wrong.json()) == {"error", "type", "details"}
    busy_answer = client().get("/busy")
    assert busy_answer.status_code == 503 and busy_answer.headers["retry-after"] == "7"


def test_a_bug_is_a_bare_500_without_internals() -> None:
    answer = client().get("/bug")
    assert answer.status_code == 500
    assert "internal detail" not in answer.text and answer.json()["type"] == "InternalError"


def test_an_unknown_route_is_404_in_the_same_shape() -> None:
    answer = client().get("/nowhere")
    assert answer.status_code == 404 and set(answer.json()) == {"error", "type", "details"}
