"""The platform's one OpenAI-compatible chat client, against a stand-in server on loopback that
speaks the protocol (tests.support.llm_standin): what it sends, and one typed error per cause."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from castml.llm_chat import ChatClient, LlmError, LlmSettings
from tests.support.llm_standin import PATH, LlmStandIn
from tests.support.ports import free_port

REPORT = {"summary": "AUC 0.75.", "aiInsights": ["one"]}
MESSAGES = [{"role": "user", "content": "[doc-a, § Causes, 0.91]\nHeat causes flash. Then more."}]


@pytest.fixture
def standin() -> Iterator[LlmStandIn]:
    with LlmStandIn() as server:
        yield server


def test_sends_model_messages_temperature_zero_and_the_bearer_key(standin: LlmStandIn) -> None:
    client = ChatClient(standin.base_url, "tiny-model", SecretStr("s3cret"), 5.0)
    content = client.complete(MESSAGES)
    assert content == "Summary (rewritten):\n- Heat causes flash. [doc-a, § Causes, 0.91]"
    (sent,) = standin.requests
    assert sent.path == PATH
    assert sent.headers["Authorization"] == "Bearer s3cret"
    assert sent.body == {"model": "tiny-model", "messages": MESSAGES, "temperature": 0}
    assert "s3cret" not in repr(client)


def test_json_answers_ask_for_a_json_object_and_no_key_sends_no_header(
    standin: LlmStandIn,
) -> None:
    client = ChatClient(standin.base_url + "/", "m")  # a trailing slash is not doubled
    content = client.complete([{"role": "user", "content": json.dumps(REPORT)}], json_answer=True)
    assert json.loads(content)["summary"] == "For marketing readers: AUC 0.75."
    (sent,) = standin.requests
    assert sent.path == PATH and "Authorization" not in sent.headers
    assert sent.body["response_format"] == {"type": "json_object"}


def test_the_async_call_answers_the_same(standin: LlmStandIn) -> None:
    client = ChatClient(standin.base_url, "m", None, 5.0)
    assert asyncio.run(client.acomplete(MESSAGES)) == client.complete(MESSAGES)


@pytest.mark.parametrize(
    ("mode", "cause", "words"),
    [
        ("error", "http_status", 'answered 500: {"error": {"message": "the model is overloaded'),
        ("malformed", "malformed", "not a chat completion"),
        ("empty", "malformed", "not a chat completion (IndexError"),
        ("hang", "timeout", "did not answer within 0.5 s"),
    ],
)
def test_each_failure_is_one_typed_error_naming_its_cause(
    standin: LlmStandIn, mode: str, cause: str, words: str
) -> None:
    standin.mode = mode
    client = ChatClient(standin.base_url, "m", None, 0.5)

    def blocking() -> str:
        return client.complete(MESSAGES)

    def awaited() -> str:
        return asyncio.run(client.acomplete(MESSAGES))

    for call in (blocking, awaited):
        with pytest.raises(LlmError) as caught:
            call()
        assert caught.value.cause == cause
        assert words in str(caught.value), str(caught.value)


def test_an_endpoint_that_is_down_is_unreachable() -> None:
    client = ChatClient(f"http://127.0.0.1:{free_port()}/v1", "m", None, 2.0)
    with pytest.raises(LlmError) as caught:
        client.complete(MESSAGES)
    assert caught.value.cause == "unreachable" and "ConnectError" in str(caught.value)


def test_settings_make_a_client_only_with_a_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CASTML_LLM_BASE_URL", "CASTML_LLM_MODEL", "CASTML_LLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert LlmSettings().llm_client() is None
    monkeypatch.setenv("CASTML_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("CASTML_LLM_MODEL", "local-model")
    monkeypatch.setenv("CASTML_LLM_API_KEY", "from-env")
    settings = LlmSettings()
    client = settings.llm_client()
    assert client is not None and client.url == "http://127.0.0.1:9/v1/chat/completions"
    assert client.model == "local-model" and client.api_key is not None
    assert client.api_key.get_secret_value() == "from-env"
    assert "from-env" not in repr(settings) and "from-env" not in str(settings.model_dump())
