"""The agent's calls over HTTP: a timeout and bounded retries per step, a plain-words reason
when a step fails, never a hang.

Calls run on one event loop in a daemon thread that the agent owns, so the sync API
(Streamlit, the CLI) keeps its connections alive between reports and a call that
overruns is cancelled, not abandoned: each attempt is bounded by `asyncio.timeout`, not
only by httpx's per-operation timeouts (a server that trickles bytes would slip past
those). A step is retried after a timeout, a transport error or a 502/503/504; a 4xx is
the caller's problem and is not retried.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from ui.agent_report import StepName, StepResult

T = TypeVar("T")
RETRIED_STATUS = frozenset({502, 503, 504})
# What the caller's thread adds to a call's own bound before it gives up on the loop too.
LOOP_SLACK_S = 2.0


@dataclass(frozen=True)
class StepOutcome:
    """A step's JSON answer (None when it failed) and how it went."""

    body: dict[str, Any] | None
    result: StepResult
    error_body: dict[str, Any] | None = None  # the server's error contract body, on a 4xx

    @property
    def rejected(self) -> bool:
        """The server refused the request itself (4xx): retrying cannot help."""
        status = self.result.http_status
        return status is not None and 400 <= status < 500


class LoopThread:
    """One event loop on a daemon thread; sync callers submit coroutines to it."""

    def __init__(self, name: str = "castml-agent") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5.0)
        if not self.thread.is_alive():
            self.loop.close()


def _reason(exc: BaseException) -> str:
    """An httpx/OS error in a few words ("connection refused"), not a traceback."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    for link in chain:
        text = str(link).lower()
        if isinstance(link, ConnectionRefusedError) or "connection refused" in text:
            return "connection refused"
        if "name or service not known" in text or "nodename nor servname" in text:
            return "unknown host"
    texts = [str(link).strip() for link in chain if str(link).strip()]
    return texts[-1] if texts else type(exc).__name__


def _error_text(response: httpx.Response) -> tuple[str, dict[str, Any] | None]:
    """The server's one-line error (castml's error contract), or the start of its body."""
    try:
        body = response.json()
    except ValueError:
        snippet = response.text.strip().replace("\n", " ")[:200]
        return (snippet or response.reason_phrase or "no body"), None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"], body
    return str(body)[:200], body if isinstance(body, dict) else None


class StepCaller:
    """POST/GET one step with a per-attempt deadline and `retries` more tries."""

    def __init__(self, timeout_s: float, retries: int, backoff_s: float) -> None:
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self._client: httpx.AsyncClient | None = None

    @property
    def worst_case_s(self) -> float:
        """The longest one step can take: every attempt timing out, plus the pauses."""
        return (self.retries + 1) * self.timeout_s + self.retries * self.backoff_s

    def client(self) -> httpx.AsyncClient:
        # Made on the loop's thread at first use: the pool belongs to that loop.
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_s),
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
                trust_env=False,  # loopback and in-cluster services: no proxy from the env
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def call(
        self,
        step: StepName,
        service: str,
        method: str,
        url: str,
        payload: Any = None,
        request_id: str | None = None,
    ) -> StepOutcome:
        headers = {"x-request-id": request_id} if request_id else {}
        started = time.perf_counter()
        attempts, why, status, error_body = 0, "", None, None
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff_s)
            attempts += 1
            try:
                async with asyncio.timeout(self.timeout_s):
                    response = await self.client().request(
                        method, url, json=payload, headers=headers
                    )
            except TimeoutError:
                why, status = f"the {service} did not answer within {self.timeout_s:g} s", None
                continue
            except httpx.TimeoutException:
                why, status = f"the {service} did not answer within {self.timeout_s:g} s", None
                continue
            except httpx.HTTPError as exc:
                why, status = f"the {service} at {url} cannot be reached: {_reason(exc)}", None
                continue
            status = response.status_code
            if status < 300:
                try:
                    body = response.json()
                except ValueError:
                    why = f"the {service} answered {status} with a body that is not JSON"
                    break
                if not isinstance(body, dict):
                    why = f"the {service} answered {status} with JSON that is not an object"
                    break
                return StepOutcome(body, self._result(step, "ok", url, started, attempts, status))
            text, error_body = _error_text(response)
            why = f"the {service} answered {status}: {text}"
            if status not in RETRIED_STATUS:
                break
        if attempts > 1:
            why = f"{why} (after {attempts} attempts)"
        result = self._result(step, "failed", url, started, attempts, status, why)
        return StepOutcome(None, result, error_body)

    @staticmethod
    def _result(
        step: StepName,
        status: str,
        url: str,
        started: float,
        attempts: int,
        http_status: int | None,
        error: str | None = None,
    ) -> StepResult:
        return StepResult(
            step=step,
            status="ok" if status == "ok" else "failed",
            url=url,
            elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
            attempts=attempts,
            error=error,
            http_status=http_status,
        )


def skipped(step: StepName, url: str, why: str) -> StepResult:
    return StepResult(step=step, status="skipped", url=url, elapsed_ms=0.0, attempts=0, error=why)
