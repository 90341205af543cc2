"""Inbound OpenAI Responses API (POST /v1/responses): what the gateway must know to price and
protect a request, checked before any upstream call, in OpenAI's words and codes.

To OpenAI cards the body is passed through, so only the fields the money and the relay depend
on are checked here (model, input, stream, max_output_tokens, max_tool_calls, tools' types,
background); the rest is OpenAI's to validate, and its refusal reaches the client scrubbed.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proxy.gateway.dialects.validation import (
    array,
    boolean,
    integer,
    invalid_type,
    invalid_value,
    missing,
    model_of,
    obj,
    require_object,
    string,
)
from proxy.gateway.errors import InvalidRequest

# OpenAI refuses a smaller max_output_tokens ("Expected a value >= 16").
MIN_OUTPUT_TOKENS = 16
# Input items whose content OpenAI fetches from its own storage: what they add to the prompt
# is not in the body's bytes.
STORED_ITEMS = (b'"item_reference"',)


@dataclass(frozen=True, slots=True)
class ResponsesCall:
    model: str
    stream: bool
    # The prompt holds more than the body: a previous response, a conversation, a stored
    # prompt or item references, which OpenAI adds from its storage.
    stored_context: bool


def validate_responses(body: Any, raw: bytes = b"") -> ResponsesCall:
    body = require_object(body)
    model = model_of(body)
    text = body.get("input")
    if text is None:
        if body.get("prompt") is None and body.get("conversation") is None:
            raise missing("input")
    elif type(text) is not str:
        if type(text) is not list:
            raise invalid_type("input", "one of a string or array of objects", text)
        for index, item in enumerate(text):
            obj(item, f"input[{index}]")
    if "max_tokens" in body:
        raise InvalidRequest(
            "Unknown parameter: 'max_tokens'. The Responses API limits the output with "
            "'max_output_tokens'.",
            param="max_tokens",
            code="unknown_parameter",
        )
    for name, value in body.items():
        check = FIELDS.get(name)
        if check is not None and value is not None:
            check(value, name)
    stream = body.get("stream") is True
    if body.get("stream_options") is not None and not stream:
        raise invalid_value(
            "stream_options",
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        )
    if body.get("background") is True:
        raise InvalidRequest(
            "background: a background response is not served here: its usage is not known "
            "when the request ends, so it cannot be held to this key's limits or charged. "
            "Send it without 'background'.",
            param="background",
            code="unsupported_value",
        )
    stored = (
        body.get("previous_response_id") is not None
        or body.get("conversation") is not None
        or body.get("prompt") is not None
        or any(marker in raw for marker in STORED_ITEMS)
    )
    return ResponsesCall(model, stream, stored)


def _max_output_tokens(value: Any, where: str) -> None:
    integer(value, where, MIN_OUTPUT_TOKENS)


def _max_tool_calls(value: Any, where: str) -> None:
    integer(value, where, 1)


def _tools(value: Any, where: str) -> None:
    for index, tool in enumerate(array(value, where)):
        at = f"{where}[{index}]"
        kind = obj(tool, at).get("type")
        if kind is None:
            raise missing(f"{at}.type")
        string(kind, f"{at}.type")


def _stream_options(value: Any, where: str) -> None:
    options = obj(value, where)
    if options.get("include_obfuscation") is not None:
        boolean(options["include_obfuscation"], f"{where}.include_obfuscation")


FIELDS: dict[str, Callable[[Any, str], None]] = {
    "background": boolean,
    "max_output_tokens": _max_output_tokens,
    "max_tool_calls": _max_tool_calls,
    "parallel_tool_calls": boolean,
    "previous_response_id": string,
    "service_tier": string,
    "store": boolean,
    "stream": boolean,
    "stream_options": _stream_options,
    "tools": _tools,
}
