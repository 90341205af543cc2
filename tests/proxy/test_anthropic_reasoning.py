"""Claude's thinking behind /v1/chat/completions: `reasoning_effort` as a thinking budget or as
adaptive thinking with an effort, signatures round-tripped; the official openai SDK in front, the
strict Anthropic fake behind."""

import openai
import pytest

from tests.conftest import LiveServer
from tests.fakes.anthropic_rules import THINKING_TEXT, signature_for
from tests.fakes.server import FakeServer
from tests.proxy.chat_helpers import HELLO, WEATHER_TOOL, post, sent
from tests.proxy.conftest import EventLog

pytestmark = pytest.mark.slow


def test_reasoning_effort_becomes_a_thinking_budget_and_signatures_round_trip(
    chat_client: openai.OpenAI, fake_anthropic: FakeServer, usage_events: EventLog
) -> None:
    question = [{"role": "user", "content": "Weather in Paris?"}]
    raw = chat_client.chat.completions.with_raw_response.create(
        model="Claude Opus 4.5",
        messages=question,
        tools=[WEATHER_TOOL],
        reasoning_effort="medium",
        max_completion_tokens=10000,
    )
    first = raw.parse()
    body = sent(fake_anthropic)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert body["max_tokens"] == 10000
    message = first.choices[0].message
    extra = message.model_extra
    assert extra["reasoning_content"] == THINKING_TEXT
    assert extra["thinking_blocks"] == [
        {"type": "thinking", "thinking": THINKING_TEXT, "signature": signature_for(THINKING_TEXT)}
    ]
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert event.usage.reasoning == 7
    assert first.usage.completion_tokens_details.reasoning_tokens == 7
    # The client sends the assistant turn back as it came (thinking blocks included): Claude
    # checks the signature, and that a tool-using turn starts with its thinking.
    call = message.tool_calls[0]
    history = [
        *question,
        message,
        {"role": "tool", "tool_call_id": call.id, "content": "18 degrees"},
    ]
    answer = chat_client.chat.completions.create(
        model="Claude Opus 4.5",
        messages=history,
        tools=[WEATHER_TOOL],
        reasoning_effort="medium",
        max_completion_tokens=10000,
    )
    assert answer.choices[0].message.content == "The tool said: 18 degrees"
    assert sent(fake_anthropic)["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": THINKING_TEXT,
        "signature": signature_for(THINKING_TEXT),
    }
    # Streamed, the thinking block and its signature arrive whole before the answer ends.
    chunks = list(
        chat_client.chat.completions.create(
            model="Claude Opus 4.5", messages=HELLO, reasoning_effort="high", stream=True
        )
    )
    blocks = [
        block
        for c in chunks
        if c.choices
        for block in (c.choices[0].delta.model_extra or {}).get("thinking_blocks") or []
    ]
    assert blocks == [
        {"type": "thinking", "thinking": THINKING_TEXT, "signature": signature_for(THINKING_TEXT)}
    ]
    assert sent(fake_anthropic)["thinking"]["budget_tokens"] == 24576


def test_reasoning_effort_is_refused_where_it_cannot_apply(
    translating_gateway: LiveServer, api_key: str, fake_anthropic: FakeServer
) -> None:
    no_reasoning = post(
        translating_gateway,
        api_key,
        {"model": "Claude Haiku 3.5", "messages": HELLO, "reasoning_effort": "high"},
    )
    assert no_reasoning.status_code == 400
    assert no_reasoning.json()["error"]["param"] == "reasoning_effort"
    too_small = post(
        translating_gateway,
        api_key,
        {
            "model": "Claude Sonnet 4.5",
            "messages": HELLO,
            "reasoning_effort": "low",
            "max_completion_tokens": 500,
        },
    )
    assert too_small.status_code == 400
    assert too_small.json()["error"]["param"] == "max_completion_tokens"
    assert fake_anthropic.app.received == []


def test_reasoning_effort_to_a_model_that_thinks_adaptively_only(
    chat_client: openai.OpenAI, fake_anthropic: FakeServer
) -> None:
    """Opus 5.5 refuses a thinking budget (the strict fake too): the effort goes as Anthropic's
    effort with adaptive thinking, beside a structured-output format."""
    answer = chat_client.chat.completions.create(
        model="Claude Opus 5.5",
        messages=HELLO,
        reasoning_effort="medium",
        max_completion_tokens=10000,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "greeting", "schema": {"type": "object"}},
        },
    )
    body = sent(fake_anthropic)
    assert body["thinking"] == {"type": "adaptive"}
    assert body["output_config"] == {
        "format": {"type": "json_schema", "schema": {"type": "object"}},
        "effort": "medium",
    }
    assert answer.choices[0].message.model_extra["reasoning_content"] == THINKING_TEXT
    xhigh = chat_client.chat.completions.create(
        model="Claude Opus 5.5", messages=HELLO, reasoning_effort="xhigh", stream=True
    )
    assert [c for c in xhigh if c.choices and c.choices[0].delta.content]
    assert sent(fake_anthropic)["output_config"] == {"effort": "xhigh"}
