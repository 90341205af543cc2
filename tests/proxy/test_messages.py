"""POST /v1/messages and /v1/messages/count_tokens through the official anthropic SDK: to an
Anthropic card (passed on untouched), to an OpenAI card and to a Gemini card (translated)."""

import json
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import LiveServer
from tests.fakes.anthropic_rules import THINKING_TEXT, signature_for
from tests.fakes.server import FakeServer
from tests.proxy.conftest import EventLog

pytestmark = pytest.mark.slow

HELLO: list[Any] = [{"role": "user", "content": "Say hello"}]
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        name, _, data = block.partition("\n")
        events.append(
            (
                name.removeprefix("event: "),
                json.loads(data.removeprefix("data: "), parse_float=Decimal),
            )
        )
    return events


def stream_raw(gateway: LiveServer, api_key: str, body: dict[str, Any]) -> tuple[str, str]:
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/messages",
        json={**body, "stream": True},
        headers={"x-api-key": api_key, "anthropic-version": "2023-06-01"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return response.headers["x-request-id"], response.read().decode()


def test_anthropic_card_answer_keeps_anthropics_usage_and_adds_the_cost(
    claude: anthropic.Anthropic, fake_anthropic: FakeServer, usage_events: EventLog
) -> None:
    fake_anthropic.app.cache_read = 2
    fake_anthropic.app.cache_write = 1
    raw = claude.messages.with_raw_response.create(
        model="Claude Sonnet 4.5",
        max_tokens=100,
        messages=HELLO,
        extra_headers={"anthropic-beta": "token-efficient-tools-2025-02-19"},
    )
    message = raw.parse()
    assert message.model == "Claude Sonnet 4.5"
    assert message.content[0].text == "Hello from the fake Claude, happy to help."
    usage = json.loads(raw.http_response.text, parse_float=Decimal)["usage"]
    # Anthropic's convention kept: input_tokens excludes the cache reads and writes.
    assert (usage["input_tokens"], usage["cache_read_input_tokens"]) == (2, 2)
    assert (usage["cache_creation_input_tokens"], usage["output_tokens"]) == (1, 8)
    assert usage["cost"] == Decimal("0.00013035")
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert (event.endpoint, event.cost) == ("messages", Decimal("0.00013035"))
    request = fake_anthropic.app.received[-1]
    assert request.body == {"max_tokens": 100, "messages": HELLO, "model": "claude-sonnet-4-5"}
    assert request.headers["x-api-key"] == "sk-ant-fake"  # ours, never the client's
    assert request.headers["anthropic-beta"] == "token-efficient-tools-2025-02-19"


def test_keys_in_either_header_and_any_anthropic_version(
    translating_gateway: LiveServer, api_key: str
) -> None:
    body = {"model": "Claude Haiku 4.5", "max_tokens": 50, "messages": HELLO}
    url = f"{translating_gateway.url}/v1/messages"
    bearer = httpx.post(
        url,
        json=body,
        headers={"authorization": f"Bearer {api_key}", "anthropic-version": "2099-12-31"},
    )
    assert bearer.status_code == 200, bearer.text
    plain = httpx.post(url, json=body, headers={"x-api-key": api_key})
    assert plain.status_code == 200, plain.text
    sdk = anthropic.Anthropic(base_url=translating_gateway.url, auth_token=api_key, api_key=None)
    assert sdk.messages.create(**body).content[0].type == "text"
    missing = httpx.post(url, json=body)
    assert missing.status_code == 401
    assert missing.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": missing.json()["error"]["message"]},
    }


def test_thinking_blocks_and_signatures_pass_through_untouched(
    claude: anthropic.Anthropic, fake_anthropic: FakeServer
) -> None:
    question = {"role": "user", "content": "Weather in Paris?"}
    thinking = {"type": "enabled", "budget_tokens": 2000}
    first = claude.messages.create(
        model="Claude Opus 4.5",
        max_tokens=4000,
        thinking=thinking,
        tools=[WEATHER],
        messages=[question],
    )
    assert [block.type for block in first.content] == ["thinking", "tool_use"]
    assert first.content[0].signature == signature_for(THINKING_TEXT)
    assert first.stop_reason == "tool_use"
    tool_use = first.content[1]
    history = [
        question,
        {
            "role": "assistant",
            "content": [block.model_dump(exclude_none=True) for block in first.content],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": tool_use.id, "content": "18 degrees"}
            ],
        },
    ]
    second = claude.messages.create(
        model="Claude Opus 4.5",
        max_tokens=4000,
        thinking=thinking,
        tools=[WEATHER],
        messages=history,
    )
    assert second.content[-1].text == "The tool said: 18 degrees"
    # The fake checked the signature; the block reached it exactly as the client sent it.
    assert fake_anthropic.app.received[-1].body["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": THINKING_TEXT,
        "signature": signature_for(THINKING_TEXT),
    }


def test_anthropic_card_stream_is_relayed_with_the_cost_and_costs_what_unstreamed_does(
    translating_gateway: LiveServer,
    api_key: str,
    claude: anthropic.Anthropic,
    fake_anthropic: FakeServer,
    usage_events: EventLog,
) -> None:
    fake_anthropic.app.cache_read = 2
    body = {"model": "Claude Sonnet 4.5", "max_tokens": 100, "messages": HELLO}
    request_id, text = stream_raw(translating_gateway, api_key, body)
    events = sse_events(text)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert events[0][1]["message"]["model"] == "Claude Sonnet 4.5"
    # The content events are Anthropic's own, byte for byte.
    relayed = [frame for frame in text.encode().split(b"\n\n") if b"content_block" in frame]
    upstream = [
        frame.rstrip(b"\n") for frame in fake_anthropic.app.last_stream if b"content_block" in frame
    ]
    assert relayed == upstream
    assert len(relayed) == 10  # start, a delta per word (8), stop
    delta_usage = events[-2][1]["usage"]
    # 3 x $3 + 2 x $0.30 + 8 x $15, per million
    assert delta_usage["cost"] == Decimal("0.0001296")
    assert delta_usage["output_tokens"] == 8
    streamed = usage_events.for_request(request_id)
    plain = claude.messages.with_raw_response.create(**body)
    unstreamed = usage_events.for_request(plain.headers["x-request-id"])
    assert (streamed.usage, streamed.cost) == (unstreamed.usage, unstreamed.cost)
    assert streamed.stream
    assert streamed.endpoint == "messages"
    with claude.messages.stream(**body) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "Hello from the fake Claude, happy to help."
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens) == (3, 2)


def test_errors_come_in_anthropics_shape(
    translating_gateway: LiveServer,
    api_key: str,
    claude: anthropic.Anthropic,
    fake_openai: FakeServer,
) -> None:
    with pytest.raises(anthropic.NotFoundError) as not_found:
        claude.messages.create(model="Claude Sonet 4.5", max_tokens=10, messages=HELLO)
    assert not_found.value.body["error"]["type"] == "not_found_error"
    assert "Claude Sonnet 4.5" in not_found.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError, match="temperature"):
        claude.messages.create(
            model="Claude Sonnet 4.5", max_tokens=10, messages=HELLO, extra_body={"temperature": 2}
        )
    url = f"{translating_gateway.url}/v1/messages"
    headers = {"x-api-key": api_key}
    no_limit = httpx.post(url, json={"model": "GPT-4o", "messages": HELLO}, headers=headers)
    assert no_limit.status_code == 400
    assert no_limit.json()["error"]["type"] == "invalid_request_error"
    assert no_limit.json()["error"]["message"].startswith("max_tokens")
    extra = httpx.post(
        url,
        json={"model": "GPT-4o", "max_tokens": 5, "messages": HELLO, "bogus": 1},
        headers=headers,
    )
    assert (extra.status_code, extra.json()["error"]["message"]) == (
        400,
        "bogus: Extra inputs are not permitted",
    )
    server_tool = httpx.post(
        url,
        json={
            "model": "GPT-4o",
            "max_tokens": 5,
            "messages": HELLO,
            "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        },
        headers=headers,
    )
    assert server_tool.status_code == 400
    assert "server tool" in server_tool.json()["error"]["message"]
    wrong_method = httpx.get(url, headers=headers)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["type"] == "invalid_request_error"
    assert fake_openai.app.received == []


def test_count_tokens_is_forwarded_for_anthropic_cards(
    claude: anthropic.Anthropic, fake_anthropic: FakeServer, usage_events: EventLog
) -> None:
    raw = claude.messages.with_raw_response.count_tokens(
        model="Claude Sonnet 4.5", messages=HELLO, system="Be brief."
    )
    assert raw.parse().input_tokens == 7
    request = fake_anthropic.app.received[-1]
    assert request.path == "/v1/messages/count_tokens"
    assert request.body == {"model": "claude-sonnet-4-5", "messages": HELLO, "system": "Be brief."}
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert (event.endpoint, event.cost) == ("messages.count_tokens", Decimal(0))
    with pytest.raises(anthropic.BadRequestError, match="Anthropic models"):
        claude.messages.count_tokens(model="GPT-4o", messages=HELLO)


def test_mid_stream_upstream_error_reaches_the_sdk_as_an_error_event(
    claude: anthropic.Anthropic, fake_anthropic: FakeServer, fake_gemini: FakeServer
) -> None:
    fake_anthropic.app.stream_error_after = 4
    with (
        pytest.raises(anthropic.APIStatusError, match="overloaded"),
        claude.messages.stream(model="Claude Sonnet 4.5", max_tokens=50, messages=HELLO) as stream,
    ):
        stream.get_final_message()
    fake_gemini.app.stream_error_after = 2
    with (
        pytest.raises(anthropic.APIStatusError, match="overloaded"),
        claude.messages.stream(model="Gemini 2.5 Flash", max_tokens=50, messages=HELLO) as stream,
    ):
        stream.get_final_message()
