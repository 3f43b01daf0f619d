"""The one OpenAI-compatible chat client of the platform (optional everywhere).

`POST <base_url>/chat/completions` with the model, the messages, temperature 0 (a rewrite
should be as repeatable as the endpoint allows) and, when asked, `response_format`
`{"type": "json_object"}`; a Bearer key when one is set. The answer is the first choice's
`message.content`. Every failure is one `LlmError` whose `cause` says which of: the
endpoint could not be reached, it did not answer within the timeout, it answered an HTTP
error status, or its answer was not a chat completion. Callers keep their own
deterministic text on any of them; none is a user error of theirs.

Both a blocking and an async call: the CLI and the studio block, the knowledge role awaits
so that a slow endpoint holds no thread while the event loop keeps serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr

from castml.errors import CastmlError
from castml.settings import PlatformSettings

Cause = Literal["unreachable", "timeout", "http_status", "malformed"]


class LlmError(CastmlError):
    """The LLM endpoint gave no usable answer; `cause` names why."""

    status_code = 502

    def __init__(self, cause: Cause, detail: str) -> None:
        self.cause = cause
        super().__init__(f"LLM {cause.replace('_', ' ')}: {detail}")


class LlmSettings(PlatformSettings):
    """The optional LLM endpoint (`CASTML_LLM_*`), shared by every deployable that uses one."""

    llm_base_url: str | None = Field(
        None,
        description="OpenAI-compatible endpoint (base URL, e.g. https://host/v1) that may "
        "rewrite answers; `/chat/completions` is appended. Unset: no LLM, the deterministic "
        "text only.",
    )
    llm_model: str = Field("gpt-4o-mini", description="Model name sent to the LLM endpoint.")
    llm_api_key: SecretStr | None = Field(
        None, description="Bearer key for the LLM endpoint (never logged). Unset: no key sent."
    )
    llm_timeout_s: float = Field(
        20.0,
        gt=0,
        description="Seconds one LLM call may take before the deterministic text is kept.",
    )

    def llm_client(self) -> ChatClient | None:
        """The configured client, or None when no endpoint is set."""
        if not self.llm_base_url:
            return None
        return ChatClient(self.llm_base_url, self.llm_model, self.llm_api_key, self.llm_timeout_s)


@dataclass(frozen=True)
class ChatClient:
    base_url: str
    model: str
    api_key: SecretStr | None = None
    timeout_s: float = 20.0

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        return f"ChatClient({self.url!r}, model={self.model!r})"

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def _headers(self) -> dict[str, str]:
        key = self.api_key.get_secret_value() if self.api_key else ""
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _payload(self, messages: list[dict[str, str]], json_answer: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0}
        if json_answer:
            payload["response_format"] = {"type": "json_object"}
        return payload

    def complete(self, messages: list[dict[str, str]], *, json_answer: bool = False) -> str:
        """The reply's content; raises LlmError."""
        try:
            response = httpx.post(
                self.url,
                json=self._payload(messages, json_answer),
                headers=self._headers(),
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise _transport_error(self.url, self.timeout_s, exc) from None
        return _content(response)

    async def acomplete(self, messages: list[dict[str, str]], *, json_answer: bool = False) -> str:
        """As `complete`, without blocking the event loop."""
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.post(
                    self.url, json=self._payload(messages, json_answer), headers=self._headers()
                )
        except httpx.HTTPError as exc:
            raise _transport_error(self.url, self.timeout_s, exc) from None
        return _content(response)


def _transport_error(url: str, timeout_s: float, exc: httpx.HTTPError) -> LlmError:
    if isinstance(exc, httpx.TimeoutException):
        return LlmError("timeout", f"{url} did not answer within {timeout_s:g} s")
    return LlmError("unreachable", f"{url}: {type(exc).__name__}: {exc}")


def _content(response: httpx.Response) -> str:
    if response.status_code >= 400:
        # The body often says why (bad key, unknown model); a short piece of it, not all.
        raise LlmError(
            "http_status", f"{response.url} answered {response.status_code}: {response.text[:200]}"
        )
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LlmError(
            "malformed", f"not a chat completion ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(content, str) or not content.strip():
        raise LlmError("malformed", "the completion's message has no text content")
    return content
