"""The Responses API's tools on the chat core, for cards that are not OpenAI's (pure): function
and custom tools as functions, namespaces flattened, hosted search as the provider's own
search or dropped, tool_choice; and ToolNames, which maps the functions back to the client's
tools (responses_output.py answers through it). README.md's "Responses API to other
providers" states the rules."""

from dataclasses import dataclass, field
from typing import Any

from proxy.gateway.dialects.validation import missing
from proxy.gateway.errors import InvalidRequest
from proxy.gateway.routing import Card, ProviderKind

# Hosted search: Claude's web search or Gemini's grounding where the card prices it, else
# dropped (Codex sends it on every turn; the answer is the model's without a search, and
# nothing is charged for one).
WEB_SEARCH_TOOLS = frozenset(
    {"web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11"}
)
SEARCH_PRICES: dict[str, tuple[str, ...]] = {
    ProviderKind.ANTHROPIC: ("web_search",),
    ProviderKind.GEMINI: ("grounded_prompt", "google_search"),
}
# The parameter a custom (freeform) tool's text travels in, as a function's only argument.
CUSTOM_INPUT = "input"
NAMESPACE_JOIN = "__"


@dataclass(frozen=True, slots=True)
class ToolNames:
    """How the functions the provider is offered map back to the client's tools."""

    custom: frozenset[str] = frozenset()  # answered as custom_tool_call
    # A namespace's tools are offered as "<namespace>__<name>": the flat name -> both.
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)


def chat_tools(tools: Any, card: Card, out: dict[str, Any]) -> ToolNames:
    functions: list[dict[str, Any]] = []
    custom: set[str] = set()
    namespaced: dict[str, tuple[str, str]] = {}
    for index, tool in enumerate(tools or ()):
        where = f"tools[{index}]"
        kind = tool["type"]  # validated: an object with a string type
        if kind in ("function", "custom"):
            functions.append(_client_tool(tool, where, "", custom))
        elif kind == "namespace":
            space = tool.get("name")
            if not isinstance(space, str) or not space:
                raise missing(f"{where}.name")
            for n, inner in enumerate(tool.get("tools") or ()):
                inner_where = f"{where}.tools[{n}]"
                if not isinstance(inner, dict) or inner.get("type") not in ("function", "custom"):
                    raise InvalidRequest(
                        f"{inner_where}.type: a namespace holds function and custom tools.",
                        param=f"{inner_where}.type",
                        code="invalid_value",
                    )
                function = _client_tool(inner, inner_where, space, custom)
                namespaced[function["function"]["name"]] = (space, inner["name"])
                functions.append(function)
        elif kind in WEB_SEARCH_TOOLS:
            if _searches(card):
                out["web_search_options"] = {}
        else:
            raise InvalidRequest(
                f"{where}.type: '{kind}' tools are OpenAI's and available on OpenAI models "
                f"only; {card.title} is a {card.provider} model.",
                param=f"{where}.type",
                code="unsupported_value",
            )
    if functions:
        out["tools"] = functions
    return ToolNames(frozenset(custom), namespaced)


def _client_tool(tool: dict[str, Any], where: str, space: str, custom: set[str]) -> dict[str, Any]:
    """A function or custom tool as a function (inside a namespace, under its flat name)."""
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise missing(f"{where}.name")
    flat = f"{space}{NAMESPACE_JOIN}{name}" if space else name
    if tool["type"] == "custom":
        custom.add(flat)
        return _custom_function(tool, flat)
    return _function(tool, flat)


def _searches(card: Card) -> bool:
    """Whether the card has a search of its own, priced: Claude's web search, Gemini's
    grounding with Google Search."""
    names = SEARCH_PRICES.get(card.provider, ())
    return any(card.prices.server_tool(name) is not None for name in names)


def _function(tool: dict[str, Any], name: str) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    parameters = tool.get("parameters")
    function["parameters"] = parameters if isinstance(parameters, dict) else {"type": "object"}
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _custom_function(tool: dict[str, Any], name: str) -> dict[str, Any]:
    """A freeform tool as a function of one string; its grammar, if any, as the description."""
    given = tool.get("description")
    description = given if isinstance(given, str) else ""
    fmt = tool.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar":
        description += f"\n\nThe input follows this {fmt.get('syntax')} grammar:\n"
        description += str(fmt.get("definition", ""))
    parameters = {
        "type": "object",
        "properties": {CUSTOM_INPUT: {"type": "string", "description": "The tool's input."}},
        "required": [CUSTOM_INPUT],
    }
    function: dict[str, Any] = {"name": name, "parameters": parameters}
    if description.strip():
        function["description"] = description.strip()
    return {"type": "function", "function": function}


def chat_tool_choice(choice: Any, out: dict[str, Any]) -> None:
    if choice is None:
        return
    if choice in ("auto", "none", "required"):
        if "tools" in out or choice != "required":
            out["tool_choice"] = choice
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in ("function", "custom") and isinstance(choice.get("name"), str):
        space = choice.get("namespace")
        name = (
            f"{space}{NAMESPACE_JOIN}{choice['name']}" if isinstance(space, str) else choice["name"]
        )
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    elif kind == "allowed_tools" and choice.get("mode") in ("auto", "required"):
        names = {
            tool.get("name")
            for tool in choice.get("tools") or ()
            if isinstance(tool, dict) and tool.get("type") in ("function", "custom")
        }
        out["tools"] = [t for t in out.get("tools", ()) if t["function"]["name"] in names]
        out["tool_choice"] = choice["mode"] if out["tools"] else "none"
    elif kind in WEB_SEARCH_TOOLS:
        return  # a hosted search: served as the tools' rule says, or not at all
    else:
        raise InvalidRequest(
            "tool_choice: must be 'auto', 'none', 'required', a function or custom tool by "
            "name, or allowed_tools.",
            param="tool_choice",
            code="invalid_value",
        )
