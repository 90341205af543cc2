"""The server tools a request asks its upstream to run, and at most how many calls each makes:
what the worst case (ceiling.py) holds for them.

- Anthropic (/v1/messages to a Claude card): each `web_search_*` / `web_fetch_*` tool makes at
  most its `max_uses` calls (an integer above 0, or null). A tool without one is sent with
  `max_uses: DEFAULT_MAX_USES` written in (what Claude Code's WebSearch sends), so the API
  stops it there; either may be lowered to fit the ceiling. Versions after the basic ones
  (web_search_20250305, web_fetch_20250910) filter results by running code between calls,
  so their passes are bounded by the API's sampling loop, not by their uses. Code execution
  and the MCP connector have no max_uses: where a card prices them their calls cannot be
  bounded, and the request is refused (where it does not, priced.py refuses it).
- OpenAI's search models on chat (`web_search_options`): one call per request, as charged.
- Gemini grounding (`web_search_options` becomes `googleSearch`): one grounded prompt, or at
  most GROUNDING_QUERIES search queries per candidate, which is all that is charged
  (gemini/adapter.py with_grounding); Gemini takes no limit on its queries.
"""

from collections.abc import Callable
from typing import Any

from proxy.gateway.errors import InvalidRequest
from proxy.gateway.pipeline.ceiling import ServerTool
from proxy.gateway.routing import Card
from proxy.providers.priced import (
    ANTHROPIC_SERVER_TOOLS,
    GROUNDING_QUERIES,
    check_anthropic_server_tools,
    openai_chat_searches,
)
from proxy.providers.translate import SEARCH_MAX_USES

DEFAULT_MAX_USES = 8
# The versions whose calls are each one sampling pass (no code run between them).
BASIC_VERSIONS = frozenset({"web_search_20250305", "web_fetch_20250910"})
# Their calls are counted by max_uses; the others' cannot be.
BOUNDED = frozenset({"web_search", "web_fetch"})


def messages_server_tools(body: dict[str, Any], card: Card) -> list[ServerTool]:
    """A Messages API body's server tools, for an Anthropic card (others refuse them): every
    one priced (else InvalidRequest, as the adapter would), each with a max_uses in the body."""
    tools = body.get("tools")
    if not tools and not body.get("container") and not body.get("mcp_servers"):
        return []  # most requests: nothing to look at
    check_anthropic_server_tools(body, card)
    found: list[ServerTool] = []
    for index, tool in enumerate(tools or ()):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(kind, str):
            continue
        name = next(
            (n for prefix, n in ANTHROPIC_SERVER_TOOLS.items() if kind.startswith(prefix)), None
        )
        if name is None:
            continue  # a client tool: tokens only
        if name not in BOUNDED:
            raise _unbounded(f"tools.{index}.type", f"the {name} server tool", card)
        found.append(
            ServerTool(name, _max_uses(tool, index, kind), _lower(tool), kind not in BASIC_VERSIONS)
        )
    if body.get("container") is not None:
        raise _unbounded("container", "code execution", card)
    if body.get("mcp_servers"):
        raise _unbounded("mcp_servers", "the MCP connector", card)
    return found


def chat_server_tools(body: dict[str, Any], card: Card) -> list[ServerTool]:
    """A chat body's server tools: `web_search_options` on a card that prices a search (other
    cards refuse it before any upstream call)."""
    if body.get("web_search_options") is None:
        return []
    prices = card.prices
    if card.provider == "openai":
        return [ServerTool("web_search", 1)] if openai_chat_searches(card) else []
    if card.provider == "anthropic":
        if prices.server_tool("web_search") is None:
            return []  # refused by the adapter
        return [_chat_search(body["web_search_options"])]
    if card.provider != "gemini":
        return []
    found = []
    if prices.server_tool("grounded_prompt") is not None:
        found.append(ServerTool("grounded_prompt", 1))
    if prices.server_tool("google_search") is not None:
        choices = body.get("n") or 1
        found.append(ServerTool("google_search", GROUNDING_QUERIES * choices))
    return found


def _chat_search(options: dict[str, Any]) -> ServerTool:
    """Claude's web search for a chat body: at most DEFAULT_MAX_USES searches, written into
    web_search_options for the adapter, lowered to fit the ceiling."""
    options[SEARCH_MAX_USES] = DEFAULT_MAX_USES

    def lower(uses: int) -> None:
        options[SEARCH_MAX_USES] = min(options[SEARCH_MAX_USES], uses)

    return ServerTool("web_search", DEFAULT_MAX_USES, lower)


def _max_uses(tool: dict[str, Any], index: int, kind: str) -> int:
    uses = tool.get("max_uses")
    if uses is None:
        tool["max_uses"] = DEFAULT_MAX_USES
        return DEFAULT_MAX_USES
    if not isinstance(uses, int) or isinstance(uses, bool):
        raise _invalid(index, kind, "Input should be a valid integer")
    if uses < 1:
        raise _invalid(index, kind, "Input should be greater than 0")
    return uses


def _lower(tool: dict[str, Any]) -> Callable[[int], None]:
    def lower(uses: int) -> None:
        tool["max_uses"] = min(tool["max_uses"], uses)

    return lower


def _invalid(index: int, kind: str, problem: str) -> InvalidRequest:
    where = f"tools.{index}.max_uses"
    return InvalidRequest(f"tools.{index}.{kind}.max_uses: {problem}", param=where)


def _unbounded(field: str, what: str, card: Card) -> InvalidRequest:
    return InvalidRequest(
        f"{field}: {what} takes no limit on its calls, so what a request may cost with it "
        f"cannot be bounded, and it is not served here on {card.title}.",
        param=field,
        code="unsupported_value",
    )
