"""Chat Completions `messages` as OpenAI documents them: roles, content parts, tool calls.

Keys OpenAI does not define (Anthropic's cache_control, the gateway's thinking_blocks, Gemini's
extra_content) and parts of a type it does not define (vLLM's video_url) pass untouched: the
upstream, or the translating adapter, decides about those.
"""

from typing import Any

from proxy.gateway.dialects.validation import (
    array,
    invalid_type,
    missing,
    obj,
    one_of,
    required,
    string,
)
from proxy.gateway.errors import InvalidRequest

# In the order OpenAI lists them.
ROLES = ("system", "assistant", "user", "function", "tool", "developer")
_ROLES = frozenset(ROLES)
# Roles whose message is complete with role and text alone (tool needs tool_call_id, function name).
_COMPLETE_WITH_TEXT = frozenset({"system", "assistant", "user", "developer"})
IMAGE_DETAILS = ("auto", "low", "high", "original")
AUDIO_FORMATS = ("wav", "mp3")
CACHE_TTLS = ("30m", "12h")
_CONTENT_OPTIONAL_WITH = ("tool_calls", "function_call", "audio", "refusal")


def check_messages(messages: Any) -> None:
    if messages is None:
        raise missing("messages")
    array(messages, "messages", nonempty=True)
    for index, message in enumerate(messages):
        if type(message) is not dict:
            raise invalid_type(f"messages[{index}]", "an object", message)
        role = message.get("role")
        if type(role) is not str or role not in _ROLES:
            if role is None:
                raise missing(f"messages[{index}].role")
            one_of(role, f"messages[{index}].role", ROLES)
        content = message.get("content")
        if type(content) is str and len(message) == 2 and role in _COMPLETE_WITH_TEXT:
            continue  # {"role": …, "content": "…"}, the common case: nothing more to check
        _message(message, role, content, f"messages[{index}]")


def _message(message: dict[str, Any], role: str, content: Any, where: str) -> None:
    if content is None:
        if role == "assistant":
            # OpenAI documents tool_calls and function_call; a replayed audio answer or refusal
            # has no content either.
            if not any(message.get(key) for key in _CONTENT_OPTIONAL_WITH):
                raise InvalidRequest(
                    f"Missing required parameter: '{where}.content' (an assistant message "
                    "needs content unless it has tool_calls or function_call).",
                    param=f"{where}.content",
                    code="missing_required_parameter",
                )
        elif role != "function":  # a function result's content may be null
            raise missing(f"{where}.content")
    elif type(content) is list and role != "function":
        array(content, f"{where}.content", nonempty=True)
        for index, part in enumerate(content):
            if _plain_text(part):
                continue  # its path is spelled out only for an error
            _part(part, f"{where}.content[{index}]")
    elif type(content) is not str:
        expected = "a string" if role == "function" else "one of a string or array of objects"
        raise invalid_type(f"{where}.content", expected, content)
    name = message.get("name")
    if name is not None:
        string(name, f"{where}.name")
    elif role == "function":
        raise missing(f"{where}.name")
    if role == "tool":
        string(required(message, "tool_call_id", where), f"{where}.tool_call_id")
    elif role == "assistant":
        _assistant(message, where)


def _plain_text(part: Any) -> bool:
    return (
        type(part) is dict
        and len(part) == 2
        and part.get("type") == "text"
        and type(part.get("text")) is str
    )


def _assistant(message: dict[str, Any], where: str) -> None:
    refusal = message.get("refusal")
    if refusal is not None:
        string(refusal, f"{where}.refusal")
    audio = message.get("audio")
    if audio is not None:
        audio = obj(audio, f"{where}.audio")
        string(required(audio, "id", f"{where}.audio"), f"{where}.audio.id")
    call = message.get("function_call")
    if call is not None:
        _named(call, f"{where}.function_call", "arguments")
    calls = message.get("tool_calls")
    if calls is not None:
        for index, call in enumerate(array(calls, f"{where}.tool_calls")):
            _tool_call(call, f"{where}.tool_calls[{index}]")


def _named(value: Any, where: str, other: str) -> None:
    """An object with a string `name` and a string `other` (arguments, input)."""
    value = obj(value, where)
    string(required(value, "name", where), f"{where}.name")
    string(required(value, other, where), f"{where}.{other}")


def _tool_call(call: Any, where: str) -> None:
    call = obj(call, where)
    string(required(call, "id", where), f"{where}.id")
    kind = required(call, "type", where)
    if kind == "function":
        _named(required(call, "function", where), f"{where}.function", "arguments")
    elif kind == "custom":
        _named(required(call, "custom", where), f"{where}.custom", "input")
    else:
        string(kind, f"{where}.type")


def _part(part: Any, where: str) -> None:
    part = obj(part, where)
    kind = required(part, "type", where)
    if kind == "text":
        string(required(part, "text", where), f"{where}.text")
    elif kind == "image_url":
        image = obj(required(part, "image_url", where), f"{where}.image_url")
        string(required(image, "url", f"{where}.image_url"), f"{where}.image_url.url")
        detail = image.get("detail")
        if detail is not None:
            one_of(detail, f"{where}.image_url.detail", IMAGE_DETAILS)
    elif kind == "input_audio":
        audio = obj(required(part, "input_audio", where), f"{where}.input_audio")
        string(required(audio, "data", f"{where}.input_audio"), f"{where}.input_audio.data")
        fmt = required(audio, "format", f"{where}.input_audio")
        one_of(fmt, f"{where}.input_audio.format", AUDIO_FORMATS)
    elif kind == "file":
        file = obj(required(part, "file", where), f"{where}.file")
        for key in ("file_data", "file_id", "filename"):
            if file.get(key) is not None:
                string(file[key], f"{where}.file.{key}")
    elif kind == "refusal":
        string(required(part, "refusal", where), f"{where}.refusal")
    else:
        string(kind, f"{where}.type")
    mark = part.get("prompt_cache_breakpoint")
    if mark is not None:
        mark = obj(mark, f"{where}.prompt_cache_breakpoint")
        mode = required(mark, "mode", f"{where}.prompt_cache_breakpoint")
        one_of(mode, f"{where}.prompt_cache_breakpoint.mode", ("explicit",))
        if mark.get("ttl") is not None:
            one_of(mark["ttl"], f"{where}.prompt_cache_breakpoint.ttl", CACHE_TTLS)
