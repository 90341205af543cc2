"""An OpenAI chat request as an Anthropic Messages API request (pure; raises InvalidRequest).

The rules that are ours rather than either API's are documented in README.md ("Anthropic").
"""

from typing import Any

from proxy.gateway.errors import InvalidRequest
from proxy.gateway.routing import Card
from proxy.providers.priced import check_server_tool, check_service_tier
from proxy.providers.translate import (
    EFFORT_BUDGETS,
    OPENAI_BOOKKEEPING,
    SEARCH_MAX_USES,
    data_url,
    function_of,
    image_url_of,
    json_schema_of,
    max_output,
    reasoning_effort,
    refuse_meaningful,
    refuse_unknown,
    response_format_type,
    tool_arguments,
    unsupported,
)

# The forced tool standing in for JSON mode where Anthropic has no native one.
JSON_TOOL = "json_response"
WEB_SEARCH_TOOL = "web_search_20250305"
DEFAULT_MAX_TOKENS = 4096
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
KNOWN_FIELDS = frozenset(
    {
        *OPENAI_BOOKKEEPING,
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "user",
        "seed",  # Anthropic has no seed; OpenAI's is best-effort only, so it is dropped
        "n",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "audio",
        "modalities",
        "prediction",
        "web_search_options",
        "functions",
        "function_call",
        "verbosity",
        # Anthropic's own knobs, accepted on /v1/chat/completions as extensions.
        "top_k",
        "thinking",
    }
)
# Claude models that still take temperature and top_p together and lack structured outputs.
# Every newer Claude (Opus 4.1 and on) refuses both sampling parameters at once.
_LEGACY_PREFIXES = (
    "claude-2",
    "claude-instant",
    "claude-3",
    "claude-opus-4-0",
    "claude-opus-4-2025",
    "claude-sonnet-4-0",
    "claude-sonnet-4-2025",
)


def is_legacy_claude(model: str) -> bool:
    return model.startswith(_LEGACY_PREFIXES)


def uses_json_tool(body: dict[str, Any], card: Card) -> bool:
    """Whether the request asked for JSON that Claude can only give through the forced tool."""
    kind = response_format_type(body)
    return kind == "json_object" or (kind == "json_schema" and is_legacy_claude(card.upstream_id))


def anthropic_body(body: dict[str, Any], card: Card, *, stream: bool) -> dict[str, Any]:
    refuse_unknown(body, KNOWN_FIELDS)
    check_service_tier(body, card, forwarded=False)  # Anthropic picks its tier itself
    search = body.get("web_search_options")
    if search is not None:
        # Claude's own web search, priced per search and bounded by max_uses
        # (pipeline/server_tools.py writes it in).
        check_server_tool(body, "web_search_options", "web_search", card)
        body = {k: v for k, v in body.items() if k != "web_search_options"}
    refuse_meaningful(body, card)
    system, messages = _messages(body["messages"])
    out: dict[str, Any] = {"model": card.upstream_id, "messages": messages}
    if system:
        out["system"] = system
    limit = max_output(body)
    out["max_tokens"] = limit or card.max_output_tokens or DEFAULT_MAX_TOKENS
    _sampling(body, card, out)
    stop = body.get("stop")
    if stop is not None:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    if body.get("tools"):
        out["tools"] = [_tool(tool, index) for index, tool in enumerate(body["tools"])]
    if search is not None:
        out["tools"] = [*out.get("tools", ()), _web_search(search)]
    choice = _tool_choice(body)
    if choice is not None and out.get("tools"):
        out["tool_choice"] = choice
    _thinking(body, card, out, limit)
    _response_format(body, card, out)
    if stream:
        out["stream"] = True
    return out


def _web_search(options: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's web_search_options as Claude's web search tool; its approximate location
    carries over (search_context_size has no equivalent)."""
    tool: dict[str, Any] = {"type": WEB_SEARCH_TOOL, "name": "web_search"}
    uses = options.get(SEARCH_MAX_USES)
    if isinstance(uses, int):
        tool["max_uses"] = uses
    location = (options.get("user_location") or {}).get("approximate")
    if isinstance(location, dict) and location:
        tool["user_location"] = {"type": "approximate", **location}
    return tool


def _sampling(body: dict[str, Any], card: Card, out: dict[str, Any]) -> None:
    temperature, top_p = body.get("temperature"), body.get("top_p")
    if temperature is not None:
        out["temperature"] = temperature
    # Newer Claude models refuse both at once; temperature is the one clients mean.
    if top_p is not None and (temperature is None or is_legacy_claude(card.upstream_id)):
        out["top_p"] = top_p
    if body.get("top_k") is not None:
        out["top_k"] = body["top_k"]


def _thinking(body: dict[str, Any], card: Card, out: dict[str, Any], limit: int | None) -> None:
    if isinstance(body.get("thinking"), dict):
        out["thinking"] = body["thinking"]  # Anthropic's own form, as the client wrote it
        return
    effort = reasoning_effort(body, card)
    if effort is None:
        return
    # OpenAI's output limit includes reasoning, as Anthropic's does: the budget fits inside it.
    budget = min(EFFORT_BUDGETS[effort], out["max_tokens"] - 1)
    if budget < EFFORT_BUDGETS["minimal"]:
        raise InvalidRequest(
            f"Reasoning on {card.title} needs at least {EFFORT_BUDGETS['minimal']} thinking "
            f"tokens, so 'max_completion_tokens' must be more than that; it is {limit}.",
            param="max_completion_tokens",
            code="invalid_value",
        )
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}


def _response_format(body: dict[str, Any], card: Card, out: dict[str, Any]) -> None:
    kind = response_format_type(body)
    if kind is None:
        return
    if kind == "json_schema":
        _name, schema = json_schema_of(body["response_format"])
        if not is_legacy_claude(card.upstream_id):
            out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
            return
    else:
        schema = {"type": "object"}
    # No native JSON mode: a forced tool whose input is the answer (the adapter turns it back).
    if "thinking" in out:
        raise unsupported(
            card,
            "response_format",
            " together with reasoning (Claude cannot force a tool while thinking)",
        )
    tools = out.setdefault("tools", [])
    if any(tool.get("name") == JSON_TOOL for tool in tools):
        raise InvalidRequest(
            f"A tool may not be named '{JSON_TOOL}' together with a JSON response_format on "
            "Claude models: the gateway uses that name to request JSON.",
            param="tools",
            code="invalid_value",
        )
    tools.append(
        {
            "name": JSON_TOOL,
            "description": "Give the answer: call this with the response as its input.",
            "input_schema": schema if schema.get("type") == "object" else {"type": "object"},
        }
    )
    choice = out.get("tool_choice")
    if choice is None or choice["type"] == "auto":
        out["tool_choice"] = (
            {"type": "any"} if len(tools) > 1 else {"type": "tool", "name": JSON_TOOL}
        )


def _tool(tool: Any, index: int) -> dict[str, Any]:
    function = function_of(tool, index)
    name = function["name"]
    schema = function.get("parameters")
    if not isinstance(schema, dict) or not schema:
        schema = {"type": "object", "properties": {}}
    elif "type" not in schema:
        schema = {"type": "object", **schema}
    out: dict[str, Any] = {"name": name, "input_schema": schema}
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    if function.get("strict") is True:
        out["strict"] = True
    if isinstance(tool.get("cache_control"), dict):
        out["cache_control"] = tool["cache_control"]
    return out


def _tool_choice(body: dict[str, Any]) -> dict[str, Any] | None:
    choice = body.get("tool_choice")
    parallel = body.get("parallel_tool_calls")
    out: dict[str, Any] | None
    if choice is None:
        out = {"type": "auto"} if parallel is False else None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        out = {"type": "any"}
    elif (
        isinstance(choice, dict)
        and choice.get("type") == "function"
        and isinstance((choice.get("function") or {}).get("name"), str)
    ):
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise InvalidRequest(
            "'tool_choice' must be auto, none, required or "
            '{"type": "function", "function": {"name": …}}.',
            param="tool_choice",
            code="invalid_value",
        )
    if out is not None and parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


# --- messages -------------------------------------------------------------------------------


def _messages(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, alternating messages): system and developer turns go to the top."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message["role"]
        if role in ("system", "developer"):
            system += _blocks(message.get("content"), where, ("text",))
            continue
        if role == "user":
            blocks = _blocks(message.get("content"), where, ("text", "image_url", "file"))
        elif role == "assistant":
            blocks = _assistant_blocks(message, where)
            role = "assistant"
        elif role == "tool":
            blocks = [_tool_result(message, where)]
            role = "user"
        else:
            raise InvalidRequest(
                f"'{where}.role' {role!r} is not supported here; use tools and tool messages.",
                param=f"{where}.role",
                code="invalid_value",
            )
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks  # Anthropic wants the roles to alternate
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            # Tool results must open the user turn that answers a tool call.
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return system, turns


def _blocks(content: Any, where: str, allowed: tuple[str, ...]) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for index, part in enumerate(content):
        part_where = f"{where}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in allowed and not (kind == "refusal" and "text" in allowed):
            raise InvalidRequest(
                f"'{part_where}.type' {kind!r} is not supported here; use {', '.join(allowed)}.",
                param=f"{part_where}.type",
                code="invalid_value",
            )
        block = _block(part, kind, part_where)
        if block is None:
            continue
        if isinstance(part.get("cache_control"), dict):
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _block(part: dict[str, Any], kind: str, where: str) -> dict[str, Any] | None:
    if kind in ("text", "refusal"):
        text = part.get(kind)
        if not isinstance(text, str):
            raise InvalidRequest(f"'{where}.{kind}' must be a string.", param=f"{where}.{kind}")
        return {"type": "text", "text": text} if text else None  # Claude refuses empty text
    if kind == "image_url":
        url = image_url_of(part, where)
        inline = data_url(url, f"{where}.image_url.url")
        if inline is None:
            return {"type": "image", "source": {"type": "url", "url": url}}
        media, data = inline
        if media not in IMAGE_TYPES:
            raise InvalidRequest(
                f"'{where}.image_url.url' is {media}; Claude takes "
                f"{', '.join(sorted(IMAGE_TYPES))}.",
                param=f"{where}.image_url.url",
                code="invalid_value",
            )
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    # A file part: PDFs travel as documents.
    file: dict[str, Any] = part["file"] if isinstance(part.get("file"), dict) else {}
    inline = data_url(str(file.get("file_data", "")), f"{where}.file.file_data")
    if inline is None or inline[0] != "application/pdf":
        raise InvalidRequest(
            f"'{where}.file' must carry a PDF as file_data (a data: URL); uploaded file ids "
            "are not shared with Anthropic.",
            param=f"{where}.file",
            code="invalid_value",
        )
    document: dict[str, Any] = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": inline[1]},
    }
    if isinstance(file.get("filename"), str):
        document["title"] = file["filename"]
    return document


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    # Thinking blocks this gateway returned earlier (as LiteLLM does), signatures untouched:
    # Claude needs them back to continue a tool-using turn it reasoned about.
    blocks: list[dict[str, Any]] = [
        block
        for block in message.get("thinking_blocks") or ()
        if isinstance(block, dict) and block.get("type") in ("thinking", "redacted_thinking")
    ]
    blocks += _blocks(message.get("content"), where, ("text",))
    for index, call in enumerate(message.get("tool_calls") or ()):
        call_id, name, arguments = tool_arguments(call, f"{where}.tool_calls[{index}]")
        blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
    return blocks


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(
            f"'{where}.tool_call_id' is required.",
            param=f"{where}.tool_call_id",
            code="missing_required_parameter",
        )
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    content = _blocks(message.get("content"), where, ("text", "image_url"))
    if content:
        result["content"] = content
    return result
