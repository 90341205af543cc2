"""The pricing function with tiers: long context, service tiers, 1-hour cache writes, server
tools; and the worst-case helpers the reservation uses. Pure: no database, no gateway."""

from decimal import Decimal

import pytest

from billing.pricing import highest_prices, server_tool_worst_case, usage_cost
from billing.usage import Usage
from proxy.catalog.price_tiers import CatalogDataError, build_prices

D = Decimal
SONNET = build_prices(
    input=D(3),
    output=D(15),
    cache_read=D("0.30"),
    cache_write=D("3.75"),
    tiers={
        "cache_write_1h": "6.00",
        "long_context": [
            {
                "above": 200000,
                "input": "6.00",
                "output": "22.50",
                "cache_read": "0.60",
                "cache_write": "7.50",
                "cache_write_1h": "12.00",
            }
        ],
        "server_tools": {"web_search": "0.01", "web_fetch": "0"},
    },
)
GPT = build_prices(
    input=D("1.25"),
    output=D(10),
    cache_read=D("0.125"),
    cache_write=D("1.25"),
    tiers={
        "service_tiers": {
            "flex": {"multiplier": "0.5"},
            "priority": {"input": "2.50", "output": "20.00", "cache_read": "0.25"},
        }
    },
)


def test_the_whole_request_is_priced_at_the_long_context_tier() -> None:
    short = Usage(uncached_input=150_000, cache_read=50_000, cache_write=0, output=1000)
    assert (
        usage_cost(short, SONNET)
        == (150_000 * D(3) + 50_000 * D("0.30") + 1000 * D(15)) / 1_000_000
    )
    long = Usage(uncached_input=150_000, cache_read=50_000, cache_write_1h=1, output=1000)
    assert (
        usage_cost(long, SONNET)
        == (150_000 * D(6) + 50_000 * D("0.60") + 1 * D(12) + 1000 * D("22.50")) / 1_000_000
    )


def test_one_hour_cache_writes_and_server_tools_have_their_own_prices() -> None:
    usage = Usage(
        uncached_input=10,
        cache_write=4,
        cache_write_1h=6,
        output=5,
        server_tools={"web_search": 3, "web_fetch": 2},
    )
    assert usage_cost(usage, SONNET) == (
        10 * D(3) + 4 * D("3.75") + 6 * D(6) + 5 * D(15)
    ) / 1_000_000 + 3 * D("0.01")


def test_service_tiers_price_what_the_upstream_reported() -> None:
    usage = Usage(uncached_input=1000, cache_read=100, output=200, reasoning=50)
    tokens = lambda i, r, o: (1000 * D(i) + 100 * D(r) + 250 * D(o)) / 1_000_000  # noqa: E731
    assert usage_cost(usage, GPT) == tokens("1.25", "0.125", "10")
    flex = Usage(uncached_input=1000, cache_read=100, output=200, reasoning=50, service_tier="flex")
    assert usage_cost(flex, GPT) == tokens("0.625", "0.0625", "5")
    priority = Usage(
        uncached_input=1000, cache_read=100, output=200, reasoning=50, service_tier="priority"
    )
    assert usage_cost(priority, GPT) == tokens("2.50", "0.25", "20")
    default = Usage(
        uncached_input=1000, cache_read=100, output=200, reasoning=50, service_tier="default"
    )
    assert usage_cost(default, GPT) == tokens("1.25", "0.125", "10")


def test_highest_prices_for_a_prompt_bound() -> None:
    assert highest_prices(SONNET, 1000) == (D(6), D(15))  # the 1-hour cache write is dearest
    assert highest_prices(SONNET, 200_000) == (D(6), D(15))
    assert highest_prices(SONNET, 200_001) == (D(12), D("22.50"))
    assert highest_prices(GPT, 10) == (D("1.25"), D(10))
    assert highest_prices(GPT, 10, "priority") == (D("2.50"), D(20))
    assert highest_prices(GPT, 10, "flex") == (D("0.625"), D(5))


def test_server_tool_worst_case() -> None:
    assert server_tool_worst_case(SONNET, {"web_search": 5, "web_fetch": 9}) == D("0.05")
    with pytest.raises(KeyError):
        server_tool_worst_case(SONNET, {"code_execution": 1})


@pytest.mark.parametrize(
    "tiers",
    [
        {"long_context": [{"above": 0, "input": "1"}]},
        {"long_context": [{"above": 2, "input": "1"}, {"above": 1, "input": "1"}]},
        {"service_tiers": {"default": {"multiplier": "2"}}},
        {"service_tiers": {"flex": {"multiplier": "0.5", "input": "1"}}},
        {"server_tools": {"web_search": "-1"}},
        {"surprise": 1},
    ],
)
def test_malformed_tiers_are_refused(tiers: dict) -> None:
    with pytest.raises(CatalogDataError):
        build_prices(input=D(1), output=D(1), cache_read=D(1), cache_write=D(1), tiers=tiers)
