"""Refusing, before any upstream call, what a request asks for that its card cannot price: a
service tier, a server tool. Served, it would be charged nothing for it (pure; raises
InvalidRequest naming the field)."""

from typing import Any

from billing.pricing import STANDARD_TIERS
from proxy.gateway.errors import InvalidRequest
from proxy.gateway.routing import Card

# Anthropic's server tools by their versioned type's prefix (web_search_20250305, ...), as the
# catalog names their price. Other typed tools (bash, text_editor, computer, memory) run on the
# client and cost only tokens.
ANTHROPIC_SERVER_TOOLS = {
    "web_search_": "web_search",
    "web_fetch_": "web_fetch",
    "code_execution_": "code_execution",
}
# Gemini takes no limit on a grounded request's Google Search queries: the worst case holds
# this many per candidate, and no more are charged (gemini/adapter.py with_grounding).
GROUNDING_QUERIES = 8


def _unpriced(field: str, what: str, card: Card, hint: str = "") -> InvalidRequest:
    return InvalidRequest(
        f"{field}: {what} has no price for {card.title} ({card.provider}), so it is not "
        f"served here{hint}.",
        param=field,
        code="unsupported_value",
    )


def check_service_tier(body: dict[str, Any], card: Card, *, forwarded: bool) -> None:
    """An OpenAI-shaped body's service_tier: the standard tier always; another only where the
    adapter passes it on (`forwarded`) and the card has prices for it."""
    tier = body.get("service_tier")
    if tier is None or tier in STANDARD_TIERS:
        return
    if not forwarded or card.prices.tier(str(tier)) is None:
        raise _unpriced(
            "service_tier", f"the {tier!r} service tier", card, "; send 'auto' or 'default'"
        )


def openai_chat_searches(card: Card) -> bool:
    """Whether chat's `web_search_options` is served on this OpenAI card: its search models
    only, where priced. Other OpenAI cards' `web_search` price is the Responses API's hosted
    tool's (proxy/catalog/litellm_tiers.py), which chat cannot call."""
    return "search" in card.upstream_id and card.prices.server_tool("web_search") is not None


def check_openai_chat_search(body: dict[str, Any], card: Card) -> None:
    if body.get("web_search_options") is not None and not openai_chat_searches(card):
        raise _unpriced("web_search_options", "the web_search server tool", card)


def check_server_tool(body: dict[str, Any], field: str, tool: str, card: Card) -> None:
    """`field` of the body asks for the server tool `tool`: the card must price it."""
    if body.get(field) is not None and card.prices.server_tool(tool) is None:
        raise _unpriced(field, f"the {tool} server tool", card)


def check_anthropic_server_tools(body: dict[str, Any], card: Card) -> None:
    """A Messages API body for an Anthropic card: every server tool it names must be priced.
    `container` belongs to code execution; `mcp_servers` (the MCP connector) has no price in
    the catalog, so it is refused."""
    for index, tool in enumerate(body.get("tools") or ()):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(kind, str):
            continue
        for prefix, name in ANTHROPIC_SERVER_TOOLS.items():
            if kind.startswith(prefix) and card.prices.server_tool(name) is None:
                raise _unpriced(f"tools.{index}.type", f"the {name} server tool", card)
    if body.get("container") is not None and card.prices.server_tool("code_execution") is None:
        raise _unpriced("container", "code execution", card)
    if body.get("mcp_servers") and card.prices.server_tool("mcp") is None:
        raise _unpriced("mcp_servers", "the MCP connector", card)
