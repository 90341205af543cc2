"""A Responses API request translated onto the gateway's OpenAI-shaped chat core, for cards
that are not OpenAI's (pure; raises InvalidRequest in OpenAI's words). README.md's "Responses
API to other providers" states the rules: instructions and system/developer items as system
messages in place, items as turns, tools as functions (responses_functions.py), `text.format` as
the response format, `reasoning.effort` as reasoning effort, reasoning items' opaque content
(our own, see reasoning_blob.py) back to the provider, and what has no equivalent dropped or
refused.
"""

from typing import Any

import orjson

from proxy.gateway.dialects.reasoning_blob import read_reasoning
from proxy.gateway.dialects.responses_functions import (
    CUSTOM_INPUT,
    NAMESPACE_JOIN,
    ToolNames,
    chat_tool_choice,
    chat_tools,
)
from proxy.gateway.dialects.validation import invalid_type, missing
from proxy.gateway.errors import InvalidRequest
from proxy.gateway.routing import Card

# Fields translated onto the chat core.
TRANSLATED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "max_output_tokens",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "text",
        "reasoning",
        "user",
        "safety_identifier",
        "stream",
        "include",
    }
)
# OpenAI's bookkeeping and service settings with no meaning elsewhere: dropped (README's rule).
DROPPED = frozenset(
    {
        "store",  # the route's: whether the gateway keeps the response (stored_responses.py)
        "metadata",
        "service_tier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt_cache_options",
        "client_metadata",
        "stream_options",
        "truncation",
        "max_tool_calls",  # bounds hosted tools, which run on OpenAI only
        "moderation",
        "background",  # only false reaches here (validation refuses true)
    }
)
# State the gateway does not keep (previous_response_id: when storage is off, else the route
# resolves it first): a 400 that says so, never a different answer.
STORED = ("previous_response_id", "conversation", "prompt")


def chat_body(
    body: dict[str, Any], card: Card, *, stream: bool
) -> tuple[dict[str, Any], ToolNames]:
    """The chat core's body, and how its functions name the client's tools."""
    for name, value in body.items():
        if name in STORED and value is not None:
            raise _not_stored(name, card)
        if name not in TRANSLATED and name not in DROPPED and name not in STORED:
            raise InvalidRequest(
                f"Unsupported parameter: '{name}' is not supported with {card.title} "
                f"({card.provider}) on /v1/responses.",
                param=name,
                code="unsupported_parameter",
            )
    out: dict[str, Any] = {"model": card.title}
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise invalid_type("instructions", "a string", instructions)
        if instructions:
            messages.append({"role": "system", "content": instructions})
    given = body.get("input")
    if isinstance(given, str):
        messages.append({"role": "user", "content": given})
    elif isinstance(given, list):
        messages += Turns(card.provider).read(given)
    out["messages"] = messages
    for setting in ("temperature", "top_p", "parallel_tool_calls"):
        if body.get(setting) is not None:
            out[setting] = body[setting]
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str):
        out["user"] = user
    names = chat_tools(body.get("tools"), card, out)
    chat_tool_choice(body.get("tool_choice"), out)
    _text_format(body.get("text"), out)
    _reasoning(body.get("reasoning"), card, out)
    if stream:
        out["stream"] = True
    return out, names


class Turns:
    """Input items as chat messages: consecutive assistant items (text, calls, reasoning) make
    one assistant message, as the provider's turns need."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.messages: list[dict[str, Any]] = []
        self.assistant: dict[str, Any] | None = None  # the assistant message being built
        self.reasoning: dict[str, Any] = {}  # the provider's signed reasoning, for the next turn

    def read(self, items: list[Any]) -> list[dict[str, Any]]:
        for index, item in enumerate(items):
            where = f"input[{index}]"
            kind = item.get("type", "message")
            if kind == "message":
                self._message(item, where)
            elif kind in ("function_call", "custom_tool_call"):
                self._call(item, where, kind)
            elif kind in ("function_call_output", "custom_tool_call_output"):
                self._close()
                self.messages.append(_tool_output(item, where))
            elif kind == "reasoning":
                held = read_reasoning(item, where, self.provider)
                self.reasoning = _merge(self.reasoning, held)
                if self.assistant is not None:  # signed data that came after the calls
                    _sign(self.assistant, held)
            elif kind == "web_search_call":
                continue  # a search the provider ran: what it found is in the answer after it
            elif kind == "item_reference":
                raise InvalidRequest(
                    f"{where}: item references point at stored responses, and this gateway "
                    "stores none (TOKENBYTE_STORE_RESPONSES is off). Send the items themselves.",
                    param=where,
                    code="unsupported_value",
                )
            else:
                raise InvalidRequest(
                    f"{where}.type: '{kind}' items are OpenAI's tools' and available on "
                    "OpenAI models only.",
                    param=f"{where}.type",
                    code="unsupported_value",
                )
        self._close()
        return self.messages

    def _message(self, item: dict[str, Any], where: str) -> None:
        role = item.get("role")
        content = item.get("content")
        if role not in ("user", "assistant", "system", "developer"):
            raise InvalidRequest(
                f"Invalid value: '{role}'. Supported values are: 'assistant', 'system', "
                "'developer', and 'user'.",
                param=f"{where}.role",
                code="invalid_value",
            )
        if role == "assistant":
            text = _assistant_text(content, where)
            turn = self._turn()
            turn["content"] = (turn.get("content") or "") + text
            return
        self._close()
        if role in ("system", "developer"):
            self.messages.append({"role": "system", "content": _plain_text(content, where)})
        elif isinstance(content, str):
            self.messages.append({"role": "user", "content": content})
        else:
            parts = [
                _input_part(part, f"{where}.content[{n}]") for n, part in _listed(content, where)
            ]
            self.messages.append({"role": "user", "content": parts})

    def _call(self, item: dict[str, Any], where: str, kind: str) -> None:
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not call_id:
            raise missing(f"{where}.call_id")
        if not isinstance(name, str) or not name:
            raise missing(f"{where}.name")
        if kind == "custom_tool_call":
            text = item.get("input")
            if not isinstance(text, str):
                raise invalid_type(f"{where}.input", "a string", text)
            arguments = orjson.dumps({CUSTOM_INPUT: text}).decode()
        else:
            given = item.get("arguments")
            if not isinstance(given, str):
                raise invalid_type(f"{where}.arguments", "a string", given)
            arguments = given
        space = item.get("namespace")
        if isinstance(space, str) and space:
            name = f"{space}{NAMESPACE_JOIN}{name}"
        call: dict[str, Any] = {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        signature = self.reasoning.get("signatures", {}).get(call_id)
        if isinstance(signature, str):
            call["extra_content"] = {"google": {"thought_signature": signature}}
        self._turn().setdefault("tool_calls", []).append(call)

    def _turn(self) -> dict[str, Any]:
        if self.assistant is None:
            self.assistant = {"role": "assistant", "content": None}
            blocks = self.reasoning.get("thinking_blocks")
            if blocks:
                self.assistant["thinking_blocks"] = blocks
        return self.assistant

    def _close(self) -> None:
        if self.assistant is not None:
            if self.assistant["content"] is None and not self.assistant.get("tool_calls"):
                self.assistant["content"] = ""
            self.messages.append(self.assistant)
            self.assistant = None
            self.reasoning = {}


def _sign(turn: dict[str, Any], held: dict[str, Any]) -> None:
    if held.get("thinking_blocks"):
        turn.setdefault("thinking_blocks", []).extend(held["thinking_blocks"])
    signatures = held.get("signatures") or {}
    for call in turn.get("tool_calls") or ():
        if call["id"] in signatures:
            call["extra_content"] = {"google": {"thought_signature": signatures[call["id"]]}}


def _merge(held: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    return {
        "thinking_blocks": [*held.get("thinking_blocks", ()), *more.get("thinking_blocks", ())],
        "signatures": {**held.get("signatures", {}), **more.get("signatures", {})},
    }


def _listed(content: Any, where: str) -> list[tuple[int, Any]]:
    if not isinstance(content, list):
        raise invalid_type(f"{where}.content", "a string or an array of content parts", content)
    return list(enumerate(content))


def _plain_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for n, part in _listed(content, where):
        if not isinstance(part, dict) or part.get("type") != "input_text":
            raise InvalidRequest(
                f"{where}.content[{n}]: system and developer messages hold text only.",
                param=f"{where}.content[{n}]",
                code="invalid_value",
            )
        texts.append(_text(part, f"{where}.content[{n}]"))
    return "\n\n".join(texts)


def _assistant_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for n, part in _listed(content, where):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("output_text", "input_text"):
            texts.append(_text(part, f"{where}.content[{n}]"))
        elif kind == "refusal":
            texts.append(str(part.get("refusal") or ""))
        else:
            raise InvalidRequest(
                f"Invalid value: '{kind}'. Supported values are: 'output_text' and 'refusal'.",
                param=f"{where}.content[{n}].type",
                code="invalid_value",
            )
    return "".join(texts)


def _text(part: dict[str, Any], where: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise invalid_type(f"{where}.text", "a string", text)
    return text


def _input_part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "input_text":
        return {"type": "text", "text": _text(part, where)}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise _file_id(where, "image_url", "images")
        image: dict[str, Any] = {"url": url}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        data = part.get("file_data")
        if not isinstance(data, str):
            raise _file_id(where, "file_data", "files")
        file: dict[str, Any] = {"file_data": data}
        if isinstance(part.get("filename"), str):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    raise InvalidRequest(
        f"Invalid value: '{kind}'. Supported values are: 'input_text', 'input_image', and "
        "'input_file'.",
        param=f"{where}.type",
        code="invalid_value",
    )


def _tool_output(item: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise missing(f"{where}.call_id")
    output = item.get("output")
    if isinstance(output, list):
        # Text parts joined; images and files in a tool's output are OpenAI's alone.
        texts = []
        for n, part in enumerate(output):
            if not isinstance(part, dict) or part.get("type") != "input_text":
                raise InvalidRequest(
                    f"{where}.output[{n}]: tool outputs hold text only on non-OpenAI models.",
                    param=f"{where}.output[{n}]",
                    code="invalid_value",
                )
            texts.append(_text(part, f"{where}.output[{n}]"))
        output = "".join(texts)
    if not isinstance(output, str):
        raise invalid_type(f"{where}.output", "a string or an array of content parts", output)
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def _text_format(text: Any, out: dict[str, Any]) -> None:
    if text is None:
        return
    if not isinstance(text, dict):
        raise invalid_type("text", "an object", text)
    fmt = text.get("format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return
    if kind == "json_object":
        out["response_format"] = {"type": "json_object"}
    elif kind == "json_schema" and isinstance(fmt, dict):
        if not isinstance(fmt.get("schema"), dict):
            raise missing("text.format.schema")
        schema: dict[str, Any] = {"name": fmt.get("name") or "response", "schema": fmt["schema"]}
        if fmt.get("strict") is not None:
            schema["strict"] = fmt["strict"]
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    else:
        raise InvalidRequest(
            f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object', and "
            "'json_schema'.",
            param="text.format.type",
            code="invalid_value",
        )


def _reasoning(reasoning: Any, card: Card, out: dict[str, Any]) -> None:
    if reasoning is None:
        return
    if not isinstance(reasoning, dict):
        raise invalid_type("reasoning", "an object", reasoning)
    effort = reasoning.get("effort")
    if effort is None or not card.supports_reasoning:
        return  # a request, not a requirement, as OpenAI's non-reasoning models take it
    out["reasoning_effort"] = effort  # checked by the adapter, in OpenAI's words


def _not_stored(field: str, card: Card) -> InvalidRequest:
    if field == "previous_response_id":
        why = "this gateway stores no responses (TOKENBYTE_STORE_RESPONSES is off)"
    else:
        why = f"{field}s are OpenAI's own state, which {card.title} ({card.provider}) cannot use"
    return InvalidRequest(
        f"{field}: {why}. Send the whole conversation in 'input' (as Codex does with store: "
        "false).",
        param=field,
        code="unsupported_parameter",
    )


def _file_id(where: str, field: str, what: str) -> InvalidRequest:
    return InvalidRequest(
        f"{where}.{field}: {what} must be sent inline here (a URL or a data: URL); uploaded "
        "file ids are OpenAI's and not shared with other providers.",
        param=f"{where}.{field}",
        code="invalid_value",
    )
