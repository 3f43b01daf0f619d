"""A stand-in for an OpenAI-compatible LLM: a real HTTP server on 127.0.0.1 that speaks the
chat-completions protocol (`POST /v1/chat/completions`) without a model behind it.

What it answers is built from the request, so a test can tell a rewrite from the input:

- a knowledge rewrite (a plain-text request): one line per passage in the prompt, the
  passage's first sentence followed by its citation marker, under "Summary (rewritten):";
- a studio narrative (`response_format` json_object): the report's own summary and
  insights, prefixed "For marketing readers: ".

`mode` (set by the test, read per request) bends the answer: "good", "invent" (adds a
citation or a number the input does not hold), "drop" (no citation; no verdict), "malformed"
(HTTP 200, not JSON), "empty" (a completion without choices), "error" (HTTP 500), "hang"
(holds the request until `release` is set or the server stops, then answers as "good").
Every request is kept in `requests` (path, headers, JSON body).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.background_server import BackgroundServer

PATH = "/v1/chat/completions"
INVENTED_CITATION = "[made-up-manual, p. 99, 0.99]"
INVENTED_NUMBER = "987654"
# The rewrite prompt's passages: a citation marker on its own line, then the passage text.
_PASSAGE = re.compile(r"^(\[[^\n]+, \d\.\d\d\])\n([^\n]+)$", re.MULTILINE)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def system(self) -> str:
        return str(self.body["messages"][0]["content"])

    @property
    def user(self) -> str:
        return str(self.body["messages"][-1]["content"])


def knowledge_rewrite(prompt: str, mode: str) -> str:
    lines = ["Summary (rewritten):"]
    for marker, text in _PASSAGE.findall(prompt):
        first = re.split(r"(?<=[.!?。])\s+", text, maxsplit=1)[0]
        lines.append(f"- {first}" + ("" if mode == "drop" else f" {marker}"))
    if mode == "invent":
        lines.append(f"- Replace the die every shift. {INVENTED_CITATION}")
    return "\n".join(lines)


def report_rewrite(prompt: str, mode: str) -> str:
    report = json.loads(prompt)
    summary = "For marketing readers: " + report["summary"]
    insights = list(report["aiInsights"])
    if mode == "invent":
        summary += f" Expect {INVENTED_NUMBER} extra clicks."
    if mode == "drop":
        summary, insights = "Everything looks fine.", []
    return json.dumps({"summary": summary, "aiInsights": insights})


class LlmStandIn(BackgroundServer):
    def __init__(self, mode: str = "good") -> None:
        super().__init__()
        self.mode = mode
        self.requests: list[Received] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer._answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet test output

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True  # a held request must not keep the tests alive
        self._serve(server)

    @property
    def base_url(self) -> str:
        """What CASTML_LLM_BASE_URL names: the client appends /chat/completions."""
        return f"http://127.0.0.1:{self.port}/v1"

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("content-length") or 0))
        body = json.loads(raw or b"{}")
        with self._lock:
            self.requests.append(Received(handler.path, dict(handler.headers.items()), body))
        mode = self.mode
        if handler.path != PATH:
            return self._send(handler, 404, b'{"error": {"message": "not found"}}')
        if mode == "hang":
            self.release.wait()
            mode = "good"
        if mode == "error":
            return self._send(handler, 500, b'{"error": {"message": "the model is overloaded"}}')
        if mode == "malformed":
            return self._send(handler, 200, b'{"choices": [{"message": ')
        if mode == "empty":
            return self._send(handler, 200, b'{"object": "chat.completion", "choices": []}')
        prompt = str(body["messages"][-1]["content"])
        wants_json = body.get("response_format", {}).get("type") == "json_object"
        content = report_rewrite(prompt, mode) if wants_json else knowledge_rewrite(prompt, mode)
        completion = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
        }
        return self._send(handler, 200, json.dumps(completion).encode())

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, payload: bytes) -> None:
        try:
            handler.send_response(status)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): nothing left to answer
