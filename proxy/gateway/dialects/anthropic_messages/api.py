"""Anthropic's Messages API inbound (/v1/messages): the gateway's own checks of a request, and
the OpenAI-shaped core's answer as an Anthropic Message (pure functions). The request's
translation for cards that are not Anthropic's is messages_translate.py."""

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from billing.pricing import cost_text
from billing.usage import Usage
from proxy.gateway.errors import InvalidRequest
from proxy.gateway.routing import Card

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


@dataclass(frozen=True, slots=True)
class MessagesCall:
    model: str
    stream: bool


def validate_messages(body: Any, *, count_only: bool = False) -> MessagesCall:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest(
            'model: a catalog title such as "Claude Sonnet 4.5" is required '
            "(GET /v1/models lists them).",
            param="model",
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(
            "messages: a non-empty array of messages is required.", param="messages"
        )
    # Roles and blocks are the upstream's to judge on Anthropic cards (passed on as they are) and
    # chat_body's on the others (what it cannot translate is a 400 naming it).
    if not count_only:
        limit = body.get("max_tokens")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise InvalidRequest(
                "max_tokens: a non-negative integer is required.", param="max_tokens"
            )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream: must be true or false.", param="stream")
    return MessagesCall(model=model, stream=stream)


# --- response: OpenAI-shaped -> Anthropic ---------------------------------------------------


def anthropic_usage(usage: Usage, cost: Decimal) -> dict[str, Any]:
    """Anthropic's usage convention (input_tokens excludes the cache) plus the cost."""
    return {
        "input_tokens": usage.uncached_input,
        "cache_creation_input_tokens": usage.cache_write,
        "cache_read_input_tokens": usage.cache_read,
        "output_tokens": usage.output + usage.reasoning,
        "cost": orjson.Fragment(cost_text(cost).encode()),
    }


def message_id(upstream_id: Any) -> str:
    return (
        f"msg_{upstream_id}"
        if isinstance(upstream_id, str) and upstream_id
        else (f"msg_{uuid.uuid4().hex}")
    )


def message_from_completion(
    data: dict[str, Any], usage: Usage, cost: Decimal, card: Card
) -> dict[str, Any]:
    choices = data.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if isinstance(message.get("content"), str) and message["content"]:
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": tool_input(function.get("arguments")),
            }
        )
    return {
        "id": message_id(data.get("id")),
        "type": "message",
        "role": "assistant",
        "model": card.title,
        "content": content,
        "stop_reason": STOP_REASONS.get(str(choice.get("finish_reason")), "end_turn"),
        "stop_sequence": None,
        "usage": anthropic_usage(usage, cost),
    }


def tool_input(arguments: Any) -> dict[str, Any]:
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
