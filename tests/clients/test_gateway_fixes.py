"""What client libraries broke on, each through the official SDKs (issue 12, item 9): the
structured-outputs beta's `output_format`, prose joined onto JSON-mode answers from Claude, and
API paths that miss /v1 answered with the console's HTML 404."""

import json
from typing import Any

import anthropic
import httpx
import openai
import pytest

from proxy.gateway.dialects.anthropic_messages.betas import ga_body
from tests.clients.conftest import CLAUDE, GEMINI, GPT, Stack

# django_db: so the test database is set up; the data itself is the module fixture's (conftest).
pytestmark = [pytest.mark.slow, pytest.mark.django_db]

HELLO: list[Any] = [{"role": "user", "content": "Say hello"}]
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "ok": {"type": "boolean"}},
    "required": ["answer", "ok"],
    "additionalProperties": False,
}
OUTPUT_FORMAT = {"type": "json_schema", "schema": SCHEMA}
BETA = "structured-outputs-2025-11-13"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def claude(stack: Stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.url, api_key=stack.api_key, max_retries=0)


@pytest.fixture
def chat(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.v1, api_key=stack.api_key, max_retries=0)


# --- output_format, the structured-outputs beta's spelling ------------------------------------


def test_the_strict_fake_refuses_the_beta_output_format_as_anthropic_does(stack: Stack) -> None:
    answer = httpx.post(
        f"{stack.fakes['anthropic'].url}/v1/messages",
        json={
            "model": "claude-sonnet-4-5",
            "max_tokens": 50,
            "messages": HELLO,
            "output_format": OUTPUT_FORMAT,
        },
        headers={
            "x-api-key": "sk-ant-fake",
            "anthropic-version": "2023-06-01",
            "anthropic-beta": BETA,
        },
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "output_format: Extra inputs are not permitted"


def test_beta_output_format_reaches_claude_as_output_config_format(
    stack: Stack, claude: anthropic.Anthropic
) -> None:
    message = claude.messages.create(
        model=CLAUDE,
        max_tokens=100,
        messages=HELLO,
        extra_body={"output_format": OUTPUT_FORMAT},
        extra_headers={"anthropic-beta": f"token-efficient-tools-2025-02-19, {BETA}"},
    )
    assert json.loads(message.content[0].text) == {"answer": "hello", "ok": True}
    received = stack.fake(CLAUDE).received[-1]
    assert "output_format" not in received.body
    assert received.body["output_config"] == {"format": OUTPUT_FORMAT}
    # The beta is GA: its name is dropped, the client's other betas go on.
    assert received.headers["anthropic-beta"] == "token-efficient-tools-2025-02-19"
    # Streamed, and with only that beta: no header left.
    with claude.messages.stream(
        model=CLAUDE,
        max_tokens=100,
        messages=HELLO,
        extra_body={"output_format": OUTPUT_FORMAT},
        extra_headers={"anthropic-beta": BETA},
    ) as stream:
        streamed = stream.get_final_message()
    assert json.loads(streamed.content[0].text) == {"answer": "hello", "ok": True}
    received = stack.fake(CLAUDE).received[-1]
    assert received.body["output_config"] == {"format": OUTPUT_FORMAT}
    assert "anthropic-beta" not in received.headers
    counted = claude.messages.count_tokens(
        model=CLAUDE, messages=HELLO, extra_body={"output_format": OUTPUT_FORMAT}
    )
    assert counted.input_tokens == 5
    assert stack.fake(CLAUDE).received[-1].body["output_config"] == {"format": OUTPUT_FORMAT}


@pytest.mark.parametrize("title", [GPT, GEMINI])
def test_beta_output_format_is_a_json_schema_response_format_elsewhere(
    stack: Stack, claude: anthropic.Anthropic, title: str
) -> None:
    message = claude.messages.create(
        model=title,
        max_tokens=100,
        messages=HELLO,
        extra_body={"output_format": OUTPUT_FORMAT},
        extra_headers={"anthropic-beta": BETA},
    )
    assert json.loads(message.content[0].text) == {"answer": "hello", "ok": True}
    sent = stack.last_body(title)
    if title == GPT:
        assert sent["response_format"]["json_schema"]["schema"] == SCHEMA
    else:
        assert sent["generationConfig"]["responseMimeType"] == "application/json"


def test_output_format_joins_the_other_output_settings() -> None:
    body = {"model": CLAUDE, "output_format": OUTPUT_FORMAT, "output_config": {"effort": "high"}}
    assert ga_body(body) == {
        "model": CLAUDE,
        "output_config": {"effort": "high", "format": OUTPUT_FORMAT},
    }
    assert body["output_format"] == OUTPUT_FORMAT  # the client's body is left as it was
    assert ga_body({"model": CLAUDE, "output_format": None}) == {"model": CLAUDE}


def test_output_format_beside_output_config_format_is_refused(
    stack: Stack, claude: anthropic.Anthropic
) -> None:
    before = len(stack.fake(CLAUDE).received)
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(
            model=CLAUDE,
            max_tokens=100,
            messages=HELLO,
            extra_body={"output_format": OUTPUT_FORMAT, "output_config": {"format": OUTPUT_FORMAT}},
        )
    error = refused.value.body["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("output_format: give the format once")
    assert len(stack.fake(CLAUDE).received) == before  # nothing reached the upstream


# --- JSON mode through the forced tool: the tool's JSON alone -----------------------------------


@pytest.fixture
def chatty_claude(stack: Stack) -> Any:
    fake = stack.fake(CLAUDE)
    fake.tool_preamble = "Let me check."
    yield fake
    fake.tool_preamble = None


def test_json_mode_on_claude_answers_the_json_alone_when_claude_writes_prose_too(
    chat: openai.OpenAI, chatty_claude: Any
) -> None:
    reply = chat.chat.completions.create(
        model=CLAUDE, messages=HELLO, response_format={"type": "json_object"}
    )
    assert reply.choices[0].message.content == '{"answer":"hello","ok":true}'
    assert reply.choices[0].finish_reason == "stop"
    # Claude did write the sentence before its (forced) tool call.
    assert [block["type"] for block in chatty_claude.last_content] == ["text", "tool_use"]
    streamed = list(
        chat.chat.completions.create(
            model=CLAUDE, messages=HELLO, response_format={"type": "json_object"}, stream=True
        )
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    assert text == '{"answer":"hello","ok":true}'
    assert streamed[-1].choices[0].finish_reason == "stop"


def test_json_mode_with_tools_leaves_the_prose_out_of_tool_calls_too(
    chat: openai.OpenAI, chatty_claude: Any
) -> None:
    reply = chat.chat.completions.create(
        model=CLAUDE,
        messages=HELLO,
        tools=[WEATHER_TOOL],
        response_format={"type": "json_object"},
    )
    message = reply.choices[0].message
    assert message.content is None
    assert message.tool_calls[0].function.name == "get_weather"
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Paris"}
    streamed = list(
        chat.chat.completions.create(
            model=CLAUDE,
            messages=HELLO,
            tools=[WEATHER_TOOL],
            response_format={"type": "json_object"},
            stream=True,
        )
    )
    assert all(not (c.choices and c.choices[0].delta.content) for c in streamed)
    assert streamed[-1].choices[0].finish_reason == "tool_calls"


def test_without_json_mode_claudes_prose_before_a_tool_call_is_kept(
    chat: openai.OpenAI, chatty_claude: Any
) -> None:
    reply = chat.chat.completions.create(model=CLAUDE, messages=HELLO, tools=[WEATHER_TOOL])
    assert reply.choices[0].message.content == "Let me check."
    assert reply.choices[0].message.tool_calls[0].function.name == "get_weather"


# --- API paths without /v1: a JSON 404 naming the right URL -------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "right"),
    [
        ("POST", "/chat/completions", "POST /v1/chat/completions"),
        ("POST", "/embeddings", "POST /v1/embeddings"),
        ("POST", "/responses", "POST /v1/responses"),
        ("GET", "/responses/resp_1", "GET /v1/responses/resp_1"),  # served: a 404 saying why
        ("GET", "/models", "GET /v1/models"),
        ("GET", "/models/gpt-4o", "GET /v1/models/gpt-4o"),
        ("GET", "/models/123", "GET /v1/models/123"),
    ],
)
def test_openai_paths_without_v1_get_openais_404_naming_the_url(
    stack: Stack, method: str, path: str, right: str
) -> None:
    answer = httpx.request(
        method,
        stack.url + path,
        json={} if method == "POST" else None,
        headers={"authorization": f"Bearer {stack.api_key}", "accept": "application/json"},
    )
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-request-id"].startswith("req_")
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "unknown_url")
    assert f"use {right} " in error["message"]


def test_an_sdk_given_the_server_root_is_told_where_the_api_is(stack: Stack) -> None:
    rooted = openai.OpenAI(base_url=stack.url, api_key=stack.api_key, max_retries=0)
    with pytest.raises(openai.NotFoundError) as missed:
        rooted.chat.completions.create(model=GPT, messages=HELLO)
    assert "use POST /v1/chat/completions" in missed.value.message
    # The AI SDK's anthropic provider appends /messages to its base URL: Anthropic's shape.
    answer = httpx.post(
        f"{stack.url}/messages",
        json={"model": CLAUDE, "max_tokens": 10, "messages": HELLO},
        headers={"x-api-key": stack.api_key, "anthropic-version": "2023-06-01"},
    )
    assert answer.status_code == 404
    body = answer.json()
    assert (body["type"], body["error"]["type"]) == ("error", "not_found_error")
    assert "use POST /v1/messages " in body["error"]["message"]


@pytest.mark.parametrize(
    "path", ["/messages/batches", "/completions", "/v1beta/models/gemini-2.5-flash:generateContent"]
)
def test_api_paths_the_gateway_lacks_say_what_it_serves(stack: Stack, path: str) -> None:
    answer = httpx.post(stack.url + path, json={})
    assert answer.status_code == 404
    message = answer.json()["error"]["message"]
    assert message.startswith(f"Unknown endpoint: POST {path}.")
    assert "POST /v1/chat/completions" in message


def test_console_paths_still_reach_the_console(stack: Stack) -> None:
    catalog = httpx.get(f"{stack.url}/models/")
    assert catalog.status_code == 200
    assert catalog.headers["content-type"].startswith("text/html")
    # A browser asking for /models is sent to the catalog page, as before.
    browser = httpx.get(f"{stack.url}/models", headers={"accept": "text/html,*/*;q=0.8"})
    assert (browser.status_code, browser.headers["location"]) == (301, "/models/")
    # A card's page too (an SDK's /models/{id} has no trailing slash: the case above).
    card = httpx.get(f"{stack.url}/models/999999/")
    assert card.status_code == 404
    assert card.headers["content-type"].startswith("text/html")
    home = httpx.get(f"{stack.url}/")
    assert home.status_code == 200
    assert home.headers["content-type"].startswith("text/html")
    unknown = httpx.get(f"{stack.url}/no-such-page/")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("text/html")
