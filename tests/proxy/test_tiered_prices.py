"""Prices beyond four numbers, end to end for each provider: the charge is the card's price x
the upstream's usage (long-context and service tiers, 1-hour cache writes, server-tool calls),
and a tier or server tool the card does not price is a 400 that never reaches the upstream."""

from decimal import Decimal

import anthropic
import openai
import pytest

from billing.usage import Usage
from tests.fakes.server import FakeServer
from tests.proxy.chat_helpers import HELLO
from tests.proxy.conftest import EventLog

pytestmark = pytest.mark.slow

D = Decimal
M = 1_000_000
MSG = [{"role": "user", "content": "Say hello"}]


def tokens(usage: Usage, i: str, r: str, w: str, w1h: str, o: str) -> Decimal:
    return (
        usage.uncached_input * D(i)
        + usage.cache_read * D(r)
        + usage.cache_write * D(w)
        + usage.cache_write_1h * D(w1h)
        + (usage.output + usage.reasoning) * D(o)
    ) / M


# --- Gemini ---------------------------------------------------------------------------------
def test_gemini_long_prompts_price_the_whole_request_higher(
    chat_client: openai.OpenAI, fake_gemini: FakeServer, usage_events: EventLog
) -> None:
    short = chat_client.chat.completions.with_raw_response.create(
        model="Gemini 2.5 Pro", messages=HELLO
    )
    fake_gemini.app.extra_prompt_tokens = 200_000
    long = chat_client.chat.completions.with_raw_response.create(
        model="Gemini 2.5 Pro", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    list(long.parse())
    one = usage_events.for_request(short.headers["x-request-id"])
    two = usage_events.for_request(long.headers["x-request-id"])
    assert one.cost == tokens(one.usage, "1.25", "0.125", "1.25", "1.25", "10")
    assert two.usage.prompt_tokens > 200_000
    assert two.cost == tokens(two.usage, "2.50", "0.25", "1.25", "1.25", "15")


@pytest.mark.parametrize(
    ("title", "tool", "price"),
    [
        ("Gemini 2.5 Flash", "grounded_prompt", D("0.035")),
        ("Gemini 3 Pro Preview", "google_search", D("0.014")),
    ],
)
def test_gemini_grounding_is_charged_per_prompt_or_per_query(
    chat_client: openai.OpenAI,
    fake_gemini: FakeServer,
    usage_events: EventLog,
    title: str,
    tool: str,
    price: Decimal,
) -> None:
    raw = chat_client.chat.completions.with_raw_response.create(
        model=title, messages=HELLO, extra_body={"web_search_options": {}}
    )
    assert {"googleSearch": {}} in fake_gemini.app.received[-1].body["tools"]
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert event.usage.server_tools == {"google_search": 2, "grounded_prompt": 1}
    calls = event.usage.server_tools[tool]
    rates = {
        "Gemini 2.5 Flash": ("0.30", "0.03", "2.50"),
        "Gemini 3 Pro Preview": ("2.00", "0.20", "12.00"),
    }
    i, r, o = rates[title]
    assert event.cost == tokens(event.usage, i, r, i, i, o) + calls * price


def test_gemini_grounding_without_a_price_is_refused(
    chat_client: openai.OpenAI, fake_gemini: FakeServer
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        chat_client.chat.completions.create(
            model="Gemini 2.0 Flash", messages=HELLO, extra_body={"web_search_options": {}}
        )
    assert refused.value.body["param"] == "web_search_options"
    with pytest.raises(openai.BadRequestError) as tier:
        chat_client.chat.completions.create(
            model="Gemini 2.5 Flash", messages=HELLO, extra_body={"service_tier": "flex"}
        )
    assert tier.value.body["param"] == "service_tier"
    assert fake_gemini.app.received == []


# --- Anthropic ------------------------------------------------------------------------------
def test_claude_web_search_one_hour_cache_and_long_context_are_priced(
    claude: anthropic.Anthropic, fake_anthropic: FakeServer, usage_events: EventLog
) -> None:
    fake_anthropic.app.cache_write = 2
    fake_anthropic.app.cache_write_1h = 3
    search = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]
    plain = claude.messages.with_raw_response.create(
        model="Claude Sonnet 4.5",
        max_tokens=50,
        messages=MSG,
        tools=search,
    )
    assert plain.parse().usage.server_tool_use.web_search_requests == 2
    event = usage_events.for_request(plain.headers["x-request-id"])
    assert (event.usage.cache_write, event.usage.cache_write_1h) == (2, 3)
    assert event.usage.server_tools == {"web_search": 2}
    assert event.usage.service_tier == "standard"
    assert event.cost == tokens(event.usage, "3", "0.30", "3.75", "6", "15") + 2 * D("0.01")

    fake_anthropic.app.extra_prompt_tokens = 200_000
    long = claude.beta.messages.with_raw_response.create(
        model="Claude Sonnet 4.5",
        max_tokens=50,
        messages=MSG,
        betas=["context-1m-2025-08-07"],
        stream=True,
    )
    list(long.parse())
    event = usage_events.for_request(long.headers["x-request-id"])
    assert event.usage.prompt_tokens > 200_000
    assert event.cost == tokens(event.usage, "6", "0.60", "7.50", "12", "22.50")


def test_claude_streamed_costs_what_unstreamed_costs_with_server_tools(
    claude: anthropic.Anthropic, fake_anthropic: FakeServer, usage_events: EventLog
) -> None:
    search = [{"type": "web_search_20250305", "name": "web_search"}]
    plain = claude.messages.with_raw_response.create(
        model="Claude Haiku 4.5",
        max_tokens=50,
        messages=MSG,
        tools=search,
    )
    streamed = claude.messages.with_raw_response.create(
        model="Claude Haiku 4.5",
        max_tokens=50,
        messages=MSG,
        tools=search,
        stream=True,
    )
    list(streamed.parse())
    one = usage_events.for_request(plain.headers["x-request-id"])
    two = usage_events.for_request(streamed.headers["x-request-id"])
    assert one.usage == two.usage
    assert one.cost == two.cost == tokens(one.usage, "1", "0.10", "1.25", "2", "5") + D("0.02")


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {"tools": [{"type": "code_execution_20250825", "name": "code_execution"}]},
            "tools.0.type",
        ),
        ({"container": "container_1"}, "container"),
        (
            {"mcp_servers": [{"type": "url", "url": "https://mcp.example.com/sse", "name": "x"}]},
            "mcp_servers",
        ),
    ],
)
def test_claude_server_tools_without_a_price_are_refused(
    claude: anthropic.Anthropic, fake_anthropic: FakeServer, extra: dict, param: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(
            model="Claude Sonnet 4.5",
            max_tokens=50,
            messages=MSG,
            extra_body=extra,
        )
    assert refused.value.message.startswith(param) or param in refused.value.message
    assert fake_anthropic.app.received == []


# --- OpenAI ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tier", "rates"),
    [
        ("flex", ("0.625", "0.0625", "5")),
        ("priority", ("2.50", "0.25", "20")),
        ("auto", ("1.25", "0.125", "10")),
    ],
)
def test_openai_service_tier_is_recorded_and_priced(
    openai_client: openai.OpenAI,
    fake_openai: FakeServer,
    usage_events: EventLog,
    tier: str,
    rates: tuple[str, str, str],
) -> None:
    fake_openai.app.cached_tokens = 1
    raw = openai_client.chat.completions.with_raw_response.create(
        model="GPT-5", messages=HELLO, extra_body={"service_tier": tier}
    )
    assert fake_openai.app.received[-1].body["service_tier"] == tier
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert event.usage.service_tier == ("default" if tier == "auto" else tier)
    i, r, o = rates
    assert event.cost == tokens(event.usage, i, r, i, i, o)


def test_openai_chat_web_search_is_charged_per_call(
    openai_client: openai.OpenAI, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(
        model="GPT-4o Search Preview", messages=HELLO, extra_body={"web_search_options": {}}
    )
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert event.usage.server_tools == {"web_search": 1}
    assert event.cost == tokens(event.usage, "2.50", "1.25", "2.50", "2.50", "10") + D("0.025")


def test_openai_unpriced_tier_or_search_is_refused(
    openai_client: openai.OpenAI, fake_openai: FakeServer
) -> None:
    for extra, param in (
        ({"service_tier": "flex"}, "service_tier"),  # GPT-4o has no flex prices
        ({"service_tier": "scale"}, "service_tier"),
        ({"web_search_options": {}}, "web_search_options"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            openai_client.chat.completions.create(model="GPT-4o", messages=HELLO, extra_body=extra)
        assert refused.value.body["param"] == param
    # GPT-5 prices the Responses API's web_search tool, which chat cannot call: still refused,
    # never served with a search that nothing was held for.
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client.chat.completions.create(
            model="GPT-5", messages=HELLO, extra_body={"web_search_options": {}}
        )
    assert refused.value.body["param"] == "web_search_options"
    assert fake_openai.app.received == []


# --- Mistral --------------------------------------------------------------------------------
def test_mistral_has_one_tier(chat_client: openai.OpenAI, fake_mistral: FakeServer) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        chat_client.chat.completions.create(
            model="Mistral Large", messages=HELLO, extra_body={"service_tier": "priority"}
        )
    assert refused.value.body["param"] == "service_tier"
    assert fake_mistral.app.received == []
