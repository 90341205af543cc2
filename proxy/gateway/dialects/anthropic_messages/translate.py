"""An Anthropic Messages API request translated onto the gateway's OpenAI-shaped core, for cards
that are not Anthropic's (pure; raises InvalidRequest). The rules are README.md's
("/v1/messages"): system messages in place, effort as reasoning effort, and what has no
equivalent dropped or refused."""

from typing import Any

import orjson

from proxy.gateway.errors import InvalidRequest
from proxy.gateway.routing import Card, ProviderKind

# Fields of Anthropic's request (betas included) that translate onto the OpenAI-shaped core.
TRANSLATED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
        "output_config",
        "billing_policy",  # only the default, billing this request as usual (checked below)
    }
)
# Settings of Anthropic's own service with no equivalent elsewhere: dropped (README's rule).
DROPPED = frozenset(
    {
        "service_tier",
        "cache_control",
        "inference_geo",
        "speed",
        "context_management",
        "diagnostics",
        "fallbacks",
        "fallback_credit_token",
    }
)
# Anthropic's features that only Anthropic's models have: a 400 rather than a different answer.
ANTHROPIC_ONLY = frozenset({"container", "mcp_servers", "compaction", "thread", "user_profile_id"})


def chat_body(body: dict[str, Any], card: Card, *, stream: bool) -> dict[str, Any]:
    for field in body:
        if field in ANTHROPIC_ONLY:
            raise _anthropic_only(field, card)
        if field not in TRANSLATED and field not in DROPPED:
            raise InvalidRequest(f"{field}: Extra inputs are not permitted", param=field)
    billing = body.get("billing_policy")
    if billing is not None and (not isinstance(billing, dict) or billing.get("bill_to") != "self"):
        raise _anthropic_only("billing_policy", card)
    if body["max_tokens"] < 1:
        raise InvalidRequest(
            f"max_tokens: must be at least 1 for {card.title} (0 warms Anthropic's prompt cache).",
            param="max_tokens",
        )
    out: dict[str, Any] = {"model": card.title, "max_tokens": body["max_tokens"]}
    messages = _system(body.get("system"))
    history = body["messages"]
    for index, message in enumerate(history):
        where = f"messages.{index}"
        if not isinstance(message, dict) or message.get("role") not in (
            "user",
            "assistant",
            "system",
        ):
            raise InvalidRequest(
                f"{where}.role: must be 'user', 'assistant' or 'system'.", param=where
            )
        if message["role"] == "system":
            messages += _system_message(message, where, later=history[index + 1 :])
            continue
        if not isinstance(message.get("content"), str | list):
            raise InvalidRequest(
                f"{where}.content: must be a string or an array of content blocks.", param=where
            )
        messages += _message(message, where)
    out["messages"] = messages
    for field in ("temperature", "top_p"):
        if body.get(field) is not None:
            out[field] = body[field]
    if body.get("top_k") is not None and card.provider == ProviderKind.GEMINI:
        out["top_k"] = body["top_k"]  # only Gemini has it; elsewhere it is dropped
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    user = (body.get("metadata") or {}).get("user_id")
    if isinstance(user, str):
        out["user"] = user
    if body.get("tools"):
        out["tools"] = [_tool(tool, index) for index, tool in enumerate(body["tools"])]
        _tool_choice(body.get("tool_choice"), out)
    _output_config(body, card, out)
    if stream:
        out["stream"] = True
    return out


def _system(system: Any) -> list[dict[str, Any]]:
    if system is None or system == "" or system == []:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if isinstance(system, list):
        texts = [block.get("text") for block in system if isinstance(block, dict)]
        if len(texts) == len(system) and all(isinstance(text, str) for text in texts):
            return [{"role": "system", "content": "\n\n".join(str(text) for text in texts)}]
    raise InvalidRequest("system: must be a string or an array of text blocks.", param="system")


def _anthropic_only(field: str, card: Card) -> InvalidRequest:
    return InvalidRequest(
        f"{field}: available on Anthropic models only; {card.title} is a {card.provider} model.",
        param=field,
    )


def _system_message(
    message: dict[str, Any], where: str, *, later: list[Any]
) -> list[dict[str, Any]]:
    """A role "system" message: the same instructions at the same place in the conversation.

    Its tool addition and removal blocks are dropped (every declared tool is offered throughout),
    as is its per-turn output_config; `clear_at: "next_user_message"` is honoured by leaving it
    out once a user message follows it.
    """
    if message.get("clear_at") == "next_user_message" and any(
        isinstance(turn, dict) and turn.get("role") == "user" for turn in later
    ):
        return []
    content = message.get("content")
    if content is None:
        return []  # only an output_config: nothing to say
    if isinstance(content, str):
        return [{"role": "system", "content": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(
            f"{where}.content: must be a string or an array of content blocks.", param=where
        )
    texts = []
    for index, block in enumerate(content):
        block_where = f"{where}.content.{index}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(_text(block, block_where))
        elif kind not in ("tool_addition", "tool_removal"):
            raise _unsupported_block(kind, block_where)
    return [{"role": "system", "content": "\n\n".join(texts)}] if texts else []


def _message(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    role, content = message["role"], message["content"]
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if role == "assistant":
        return [_assistant(content, where)]
    # A user turn: its tool results become tool messages, ahead of whatever else it says.
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(content):
        block_where = f"{where}.content.{index}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            results.append(_tool_result(block, block_where))
        elif kind == "text":
            parts.append({"type": "text", "text": _text(block, block_where)})
        elif kind == "image":
            parts.append(_image(block, block_where))
        elif kind == "document":
            parts.append(_document(block, block_where))
        else:
            raise _unsupported_block(kind, block_where)
    return [*results, *([{"role": "user", "content": parts}] if parts else [])]


def _assistant(content: list[Any], where: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for index, block in enumerate(content):
        block_where = f"{where}.content.{index}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(_text(block, block_where))
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise InvalidRequest(
                    f"{block_where}: tool_use needs an id and a name.", param=block_where
                )
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {
                        "name": block["name"],
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue  # signed by Anthropic, meaningless to another provider
        else:
            raise _unsupported_block(kind, block_where)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _text(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"{where}.text: must be a string.", param=where)
    return text


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    source: dict[str, Any] = block["source"] if isinstance(block.get("source"), dict) else {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif source.get("type") == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise InvalidRequest(
            f"{where}.source: a base64 or url image source is required here.", param=where
        )
    return {"type": "image_url", "image_url": {"url": url}}


def _document(block: dict[str, Any], where: str) -> dict[str, Any]:
    source: dict[str, Any] = block["source"] if isinstance(block.get("source"), dict) else {}
    if source.get("type") == "text" and isinstance(source.get("data"), str):
        return {"type": "text", "text": source["data"]}
    if source.get("type") == "base64" and source.get("media_type") == "application/pdf":
        name = block.get("title") if isinstance(block.get("title"), str) else "document.pdf"
        return {
            "type": "file",
            "file": {
                "filename": name,
                "file_data": f"data:application/pdf;base64,{source['data']}",
            },
        }
    raise InvalidRequest(
        f"{where}.source: documents must be a base64 PDF or plain text here.", param=where
    )


def _tool_result(block: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(block.get("tool_use_id"), str):
        raise InvalidRequest(f"{where}.tool_use_id: Field required", param=where)
    content = block.get("content", "")
    if isinstance(content, list):
        kinds = [part.get("type") if isinstance(part, dict) else None for part in content]
        if not all(kind in ("text", "tool_reference") for kind in kinds):
            raise InvalidRequest(
                f"{where}.content: tool results hold text only on non-Anthropic models.",
                param=where,
            )
        # A tool_reference loads a deferred tool: every declared tool is offered anyway.
        content = "".join(part.get("text", "") for part in content if part["type"] == "text")
    if not isinstance(content, str):
        raise InvalidRequest(f"{where}.content: must be a string or blocks.", param=where)
    if block.get("is_error"):
        content = f"Error: {content}"
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": content}


def _unsupported_block(kind: Any, where: str) -> InvalidRequest:
    return InvalidRequest(
        f"{where}.type: {kind!r} blocks are available on Anthropic models only.", param=where
    )


def _tool(tool: Any, index: int) -> dict[str, Any]:
    where = f"tools.{index}"
    if not isinstance(tool, dict) or tool.get("type", "custom") != "custom":
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise InvalidRequest(
            f"{where}.type: {kind!r} is a server tool, available on Anthropic models only.",
            param=where,
        )
    if not isinstance(tool.get("name"), str) or not isinstance(tool.get("input_schema"), dict):
        raise InvalidRequest(f"{where}: a tool needs a name and an input_schema.", param=where)
    function: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any, out: dict[str, Any]) -> None:
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool" and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif kind in ("auto", "any", "none"):
        out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    else:
        raise InvalidRequest("tool_choice: must be auto, any, tool or none.", param="tool_choice")
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False


def _output_config(body: dict[str, Any], card: Card, out: dict[str, Any]) -> None:
    config = body.get("output_config") or {}
    fmt = config.get("format") if isinstance(config, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": fmt.get("schema") or {}},
        }
    if not card.supports_reasoning:
        return  # thinking settings are requests, not requirements: nothing to apply here
    effort = config.get("effort") if isinstance(config, dict) else None
    thinking = body.get("thinking")
    if effort in ("low", "medium", "high"):
        out["reasoning_effort"] = effort
    elif effort in ("xhigh", "max"):
        out["reasoning_effort"] = "high"
    elif isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        budget = budget if isinstance(budget, int) else 0
        out["reasoning_effort"] = (
            "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"
        )
    elif isinstance(thinking, dict) and thinking.get("type") == "adaptive":
        out["reasoning_effort"] = "medium"
