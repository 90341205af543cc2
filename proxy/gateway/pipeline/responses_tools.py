"""The hosted tools a Responses API request asks OpenAI to run, and at most how many calls they
make: what the worst case (ceiling.py) holds for them.

Tools the client runs (function, custom, shell, apply_patch, computer use…) cost tokens only.
A hosted tool (web_search, file_search, code_interpreter, mcp…) is served where the card has
a per-call price for it, and refused with a 400 naming the tool otherwise: served, it would
be charged nothing. OpenAI stops a response's hosted-tool calls at `max_tool_calls`, one limit
for them all: a request without it is sent with DEFAULT_MAX_USES written in, and either may be
lowered to fit the ceiling. Their calls are charged from the answer's output items
(providers/openai_responses.py HOSTED_CALLS).
"""

from typing import Any

from proxy.gateway.errors import InvalidRequest
from proxy.gateway.pipeline.ceiling import ServerTool
from proxy.gateway.pipeline.server_tools import DEFAULT_MAX_USES
from proxy.gateway.routing import Card

# Run by the client, billed as tokens.
CLIENT_TOOLS = frozenset(
    {
        "function",
        "custom",
        "local_shell",
        "shell",
        "apply_patch",
        "computer",
        "computer_use_preview",
        "namespace",
    }
)
# Hosted tools by their type (and versions), as the catalog names their per-call price.
HOSTED_TOOLS = {
    "web_search": "web_search",
    "web_search_2025_08_26": "web_search",
    # The preview costs more on models that do not reason ($25 per 1,000 calls, not $10): a
    # price of its own, which the catalog does not hold yet.
    "web_search_preview": "web_search_preview",
    "web_search_preview_2025_03_11": "web_search_preview",
    "file_search": "file_search",
    "code_interpreter": "code_interpreter",
    "image_generation": "image_generation",
    "mcp": "mcp",
    "tool_search": "tool_search",
}


def responses_server_tools(body: dict[str, Any], card: Card) -> list[ServerTool]:
    """The request's hosted tools (validated: each tool an object with a string type), every
    one priced on `card`, else InvalidRequest naming it."""
    tools = body.get("tools")
    if not tools:
        return []
    names: list[str] = []
    for index, tool in enumerate(tools):
        kind = tool["type"]
        if kind in CLIENT_TOOLS:
            continue
        name = HOSTED_TOOLS.get(kind, kind)
        if card.prices.server_tool(name) is None:
            where = f"tools[{index}].type"
            raise InvalidRequest(
                f"{where}: the {kind} tool has no price for {card.title} ({card.provider}), "
                "so it is not served here; send the request without it.",
                param=where,
                code="unsupported_value",
            )
        if name not in names:
            names.append(name)
    if not names:
        return []
    if body.get("max_tool_calls") is None:
        body["max_tool_calls"] = DEFAULT_MAX_USES

    def lower(uses: int) -> None:
        body["max_tool_calls"] = min(body["max_tool_calls"], uses)

    # One limit for all of them: each tool is held for all its calls (an upper bound).
    return [ServerTool(name, body["max_tool_calls"], lower) for name in names]
