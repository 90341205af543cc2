"""The worst case of a request with server tools (pure: no database, no gateway): each tool's
calls x its price, and one context window of input for every pass after a call; over a
ceiling the calls are lowered first, then the output limit."""

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from billing.pricing import LongContext, Prices, Rates
from proxy.gateway.errors import InvalidRequest
from proxy.gateway.pipeline.ceiling import (
    SERVER_LOOP_PASSES,
    Fit,
    OutputLimit,
    ServerTool,
    worst_case,
)
from proxy.gateway.pipeline.server_tools import (
    DEFAULT_MAX_USES,
    chat_server_tools,
    messages_server_tools,
)
from proxy.providers.priced import GROUNDING_QUERIES
from tests.proxy.translation_helpers import SONNET  # $3 in, $15 out, $3.75 cache write

MILLION = Decimal(1_000_000)
SEARCH, WINDOW = Decimal("0.01"), 200_000
CLAUDE = replace(
    SONNET,
    prices=replace(SONNET.prices, server_tools=(("web_fetch", Decimal(0)), ("web_search", SEARCH))),
)
RAW = b'{"messages": [{"role": "user", "content": "What happened today?"}]}'


def searching(uses: int, written: list[int] | None = None, *, loops: bool = False) -> ServerTool:
    return ServerTool("web_search", uses, (written or []).append, loops)


def expected(prompt: int, calls: int, output: int, *, input_price: str = "3.75") -> Decimal:
    tokens = prompt + calls * WINDOW
    return (tokens * Decimal(input_price) + output * 15) / MILLION + calls * SEARCH


def test_each_call_costs_its_price_and_a_context_window_of_input() -> None:
    worst = worst_case(CLAUDE, RAW, OutputLimit(1000), tools=[searching(5)])
    prompt = len(RAW) + 1024
    assert worst.prompt_tokens == prompt
    assert worst.prompt_bound() == prompt + 5 * WINDOW
    assert worst.tools_cost() == 5 * SEARCH
    assert worst.cost() == expected(prompt, 5, 1000)
    # Without server tools the bound is the body's, as before.
    assert worst_case(CLAUDE, RAW, OutputLimit(1000)).cost() == expected(prompt, 0, 1000)


def test_a_tool_that_runs_code_between_calls_is_bounded_by_the_sampling_loop() -> None:
    worst = worst_case(CLAUDE, RAW, OutputLimit(10), tools=[searching(2, loops=True)])
    assert worst.prompt_bound() == worst.prompt_tokens + (SERVER_LOOP_PASSES - 1) * WINDOW
    assert worst.tools_cost() == 2 * SEARCH
    more = worst_case(CLAUDE, RAW, OutputLimit(10), tools=[searching(20, loops=True)])
    assert more.prompt_bound() == more.prompt_tokens + 20 * WINDOW


def test_the_summed_passes_are_priced_at_the_long_context_tier_they_reach() -> None:
    long = Rates(Decimal(6), Decimal("22.50"), Decimal("0.6"), Decimal("7.50"), Decimal(12))
    prices = replace(CLAUDE.prices, long_context=(LongContext(200_000, long),))
    tiered = replace(CLAUDE, prices=prices)
    worst = worst_case(tiered, RAW, OutputLimit(100), tools=[searching(1)])
    assert (worst.input_price, worst.output_price) == (Decimal(12), Decimal("22.50"))


def test_over_a_ceiling_calls_are_lowered_first_then_the_output() -> None:
    worst = worst_case(CLAUDE, RAW, OutputLimit(1000), tools=[searching(5)])
    prompt = worst.prompt_tokens
    assert worst.fit(Decimal(100)) == Fit(1000, 5)
    three = expected(prompt, 3, 1000)
    assert worst.fit(three) == Fit(1000, 3)
    assert worst.fit(three - Decimal("0.000001")) == Fit(1000, 2)
    # One call, and what is left for the output.
    ceiling = expected(prompt, 1, 500)
    assert worst.fit(ceiling) == Fit(500, 1)
    assert worst.fit(expected(prompt, 1, 15)) is None  # under the 16-token minimum
    assert worst.cost(500, 1) == ceiling


def test_a_fixed_count_is_never_lowered() -> None:
    fixed = ServerTool("web_search", 3)
    worst = worst_case(CLAUDE, RAW, OutputLimit(1000), tools=[fixed])
    assert worst.uses == 0
    ceiling = expected(worst.prompt_tokens, 3, 400)
    assert worst.fit(ceiling) == Fit(400, 0)
    assert worst.fit(expected(worst.prompt_tokens, 2, 1000)) is None


def messages_body(**tool: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [
            {"name": "get_weather", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search", **tool},
        ],
    }


def test_a_search_without_max_uses_is_sent_with_the_default_and_can_be_lowered() -> None:
    body = messages_body()
    (tool,) = messages_server_tools(body, CLAUDE)
    assert (tool.name, tool.uses, tool.loops) == ("web_search", DEFAULT_MAX_USES, False)
    assert body["tools"][1]["max_uses"] == DEFAULT_MAX_USES
    assert tool.lower is not None
    tool.lower(3)
    assert body["tools"][1]["max_uses"] == 3
    assert "max_uses" not in body["tools"][0]  # a client tool is left alone

    sent = messages_body(max_uses=2)
    (tool,) = messages_server_tools(sent, CLAUDE)
    assert tool.uses == 2
    assert tool.lower is not None
    tool.lower(5)  # never raised
    assert sent["tools"][1]["max_uses"] == 2


def test_dynamic_filtering_versions_loop() -> None:
    body = messages_body()
    body["tools"][1]["type"] = "web_search_20260209"
    (tool,) = messages_server_tools(body, CLAUDE)
    assert tool.loops


@pytest.mark.parametrize(("uses", "problem"), [(0, "greater than 0"), ("3", "valid integer")])
def test_a_bad_max_uses_is_refused_as_anthropic_refuses_it(uses: object, problem: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        messages_server_tools(messages_body(max_uses=uses), CLAUDE)
    assert refused.value.message.startswith("tools.1.web_search_20250305.max_uses: Input should")
    assert problem in refused.value.message


def test_priced_code_execution_or_mcp_cannot_be_bounded_and_is_refused() -> None:
    priced = replace(
        CLAUDE,
        prices=replace(
            CLAUDE.prices,
            server_tools=(("code_execution", Decimal("0.05")), ("mcp", Decimal("0.01"))),
        ),
    )
    code = {**messages_body(), "tools": [{"type": "code_execution_20250825", "name": "x"}]}
    with pytest.raises(InvalidRequest, match="cannot be bounded"):
        messages_server_tools(code, priced)
    mcp = {
        **messages_body(),
        "tools": [],
        "mcp_servers": [{"type": "url", "url": "u", "name": "x"}],
    }
    with pytest.raises(InvalidRequest, match="cannot be bounded"):
        messages_server_tools(mcp, priced)
    with pytest.raises(InvalidRequest, match="has no price"):  # unpriced: priced.py's 400
        messages_server_tools(code, CLAUDE)


def test_chat_searches_count_one_call_or_the_grounding_queries_per_candidate() -> None:
    search: dict[str, Any] = {"web_search_options": {}}
    gpt = replace(
        SONNET,
        provider="openai",
        upstream_id="gpt-4o-search-preview",
        prices=replace(SONNET.prices, server_tools=(("web_search", Decimal("0.025")),)),
    )
    assert chat_server_tools(search, gpt) == [ServerTool("web_search", 1)]
    assert chat_server_tools({}, gpt) == []
    # A model that is no search model: its web_search price is the Responses API tool's.
    assert chat_server_tools(search, replace(gpt, upstream_id="gpt-5")) == []
    gemini3 = replace(
        gpt,
        provider="gemini",
        prices=replace(Prices(Decimal(2), Decimal(12), Decimal("0.2"), Decimal(0))),
    )
    gemini3 = replace(
        gemini3, prices=replace(gemini3.prices, server_tools=(("google_search", Decimal("0.014")),))
    )
    (queries,) = chat_server_tools({**search, "n": 2}, gemini3)
    assert (queries.name, queries.uses, queries.lower) == (
        "google_search",
        2 * GROUNDING_QUERIES,
        None,
    )
    assert chat_server_tools(search, SONNET) == []  # unpriced: Anthropic's adapter refuses it
    (claude_search,) = chat_server_tools(search, CLAUDE)  # Claude's web search, max_uses 8
    assert (claude_search.name, claude_search.uses) == ("web_search", 8)
    assert search["web_search_options"] == {"max_uses": 8}
    assert claude_search.lower is not None
    claude_search.lower(3)
    assert search["web_search_options"] == {"max_uses": 3}
