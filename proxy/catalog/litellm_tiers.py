"""A LiteLLM price entry's tiered prices, in the catalog's spelling (price_tiers.py).

LiteLLM spells a long-context price `<price>_above_<N>k_tokens`, a service tier's
`<price>_<tier>` (both: `<price>_above_<N>k_tokens_<tier>`), Anthropic's 1-hour cache write
`cache_creation_input_token_cost_above_1hr`, and a web search's price per call in
`search_context_cost_per_query` (one price per search context size; we take "medium", the
default). Per-token prices become per-million prices, exactly.

OpenAI's models that search the web through the Responses API's `web_search` tool (LiteLLM's
`supports_web_search`, or a search price) get that tool's price, which is one for every
model: $10 per 1,000 calls (OpenAI's pricing page; the search content's tokens come in the
answer's usage at the model's prices). LiteLLM's own figure for them is the older
`web_search_preview`'s, $25 per 1,000 on models that do not reason: not what `web_search`
costs, so not taken.
"""

import re
from decimal import Decimal
from typing import Any

from billing.pricing import price_text
from proxy.catalog.price_tiers import RATE_KEYS, parse_price

ONE_MILLION = Decimal(1_000_000)
OPENAI_WEB_SEARCH_PER_CALL = Decimal("0.01")
_KEY = re.compile(
    r"(?P<price>input_cost_per_token|output_cost_per_token|cache_read_input_token_cost"
    r"|cache_creation_input_token_cost(?:_above_1hr)?)"
    r"(?:_above_(?P<thousands>\d+)k_tokens)?(?:_(?P<tier>flex|priority))?"
)
_FIELDS = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
}


def _ordered(prices: dict[str, str]) -> dict[str, str]:
    return {key: prices[key] for key in RATE_KEYS if key in prices}


def _table(prices: dict[int, dict[str, str]]) -> dict[str, Any]:
    table: dict[str, Any] = _ordered(prices.get(0, {}))
    above = [{"above": n, **_ordered(prices[n])} for n in sorted(prices) if n]
    if above:
        table["long_context"] = above
    return table


def _search_tool(provider: str, upstream_id: str, info: dict[str, Any]) -> str | None:
    if provider == "anthropic":
        return "web_search"
    if provider == "gemini":
        # Gemini 3 bills each search query; Gemini 2.5 and older each grounded prompt.
        return (
            "google_search"
            if info.get("web_search_billing_unit") == "per_query"
            else ("grounded_prompt")
        )
    if provider == "openai" and "search" in upstream_id:
        return "web_search"  # chat's web_search_options: the search models only
    return None


def litellm_tiers(
    provider: str, upstream_id: str, info: dict[str, Any], where: str
) -> dict[str, Any]:
    """The entry's tiers: cache_write_1h, long_context, service_tiers, server_tools."""
    by_tier: dict[str, dict[int, dict[str, str]]] = {}
    for key, value in info.items():
        match = _KEY.fullmatch(key)
        if match is None or value is None:
            continue
        price = parse_price(value, f"{where} {key!r}", scale=ONE_MILLION)
        tier = by_tier.setdefault(match["tier"] or "", {})
        threshold = int(match["thousands"]) * 1000 if match["thousands"] else 0
        tier.setdefault(threshold, {})[_FIELDS[match["price"]]] = price_text(price)
    standard = by_tier.pop("", {})
    # The four standard prices are the card's own fields; only what is beyond them is kept.
    result: dict[str, Any] = _table(standard)
    for key in ("input", "output", "cache_read", "cache_write"):
        result.pop(key, None)
    service_tiers = {
        name: _table(prices)
        for name, prices in sorted(by_tier.items())
        # A tier is priced when both its token prices are known; LiteLLM lists partial ones.
        if {"input", "output"} <= set(prices.get(0, {}))
    }
    if service_tiers:
        result["service_tiers"] = service_tiers
    search = info.get("search_context_cost_per_query")
    tool = _search_tool(provider, upstream_id, info)
    if isinstance(search, dict) and tool and search.get("search_context_size_medium") is not None:
        per_call = parse_price(search["search_context_size_medium"], f"{where} search cost")
        result["server_tools"] = {tool: price_text(per_call)}
    elif provider == "openai" and (info.get("supports_web_search") or isinstance(search, dict)):
        result["server_tools"] = {"web_search": price_text(OPENAI_WEB_SEARCH_PER_CALL)}
    return result
