"""GET /v1/generation?id=…: one call's stats, in the shape of OpenRouter's generation endpoint.

`id` is the answer's body `id` (`chatcmpl-…`, `msg_…`) or the gateway's own id of the call (the
`x-tokenbyte-generation-id` response header). Only the key's own account's calls are found: any
other id, whoever's it is, is the same 404. Records are written a moment after the answer (at
most a few seconds), so a 404 right after a call may be retried, as on OpenRouter. Not a model
call: no usage event, no reservation, no rate-limit cost (as GET /v1/models).
"""

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import orjson

from billing.pricing import cost_text
from proxy.gateway.auth.authenticate import authenticate
from proxy.gateway.auth.key_cache import KeyResolver
from proxy.gateway.errors import InvalidRequest, NotFound
from proxy.gateway.http import JSON_CONTENT_TYPE, Request, Response
from proxy.gateway.stores import Generation

GENERATION_PATH = "/v1/generation"
# Event ids are 32 characters and recorded body ids at most 128: longer ids name no call.
MAX_ID_LENGTH = 128
# How a call that ended this way reads as OpenRouter's `cancelled`.
CANCELLED_CODES = frozenset({"client_disconnected", "cancelled"})

Lookup = Callable[[int, str], Awaitable[Generation | None]]


async def generation(request: Request, keys: KeyResolver, lookup: Lookup) -> Response:
    policy = await authenticate(request, keys, allow_x_api_key=True)
    generation_id = _requested_id(request.scope.get("query_string", b""))
    found = None
    if len(generation_id) <= MAX_ID_LENGTH:
        found = await lookup(policy.account_id, generation_id)
    if found is None:
        # The same answer whether the id is another account's or nobody's.
        raise NotFound(
            f"No generation with the id {generation_id[:MAX_ID_LENGTH]!r} for this API key's "
            "account. Stats are recorded within a few seconds of the answer: if it has only "
            "just ended, retry shortly.",
            param="id",
            code="generation_not_found",
        )
    return Response(200, orjson.dumps({"data": generation_data(found)}), [JSON_CONTENT_TYPE])


def _requested_id(query_string: bytes) -> str:
    query = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
    values = [value.strip() for value in query.get("id", ())]
    if not values or not values[0]:
        raise InvalidRequest(
            "id: required, the `id` of an answer or its x-tokenbyte-generation-id header "
            "(GET /v1/generation?id=…).",
            param="id",
        )
    return values[0]


def _number(value: Decimal) -> orjson.Fragment:
    """A JSON number with the amount's exact digits (as `usage.cost` is written)."""
    return orjson.Fragment(cost_text(value).encode())


def _ms(microseconds: int) -> orjson.Fragment:
    """Milliseconds, to the microsecond recorded: 812.345."""
    milliseconds = Decimal(microseconds).scaleb(-3).normalize()
    return orjson.Fragment(format(milliseconds, "f").encode() if microseconds else b"0")


def generation_data(call: Generation) -> dict[str, Any]:
    """OpenRouter's fields where TokenByte has them (null where it does not), then its own."""
    prompt = call.uncached_input_tokens + call.cache_read_tokens + call.cache_write_tokens
    completion = call.output_tokens + call.reasoning_tokens
    ttfb = _ms(call.ttfb_us) if call.ttfb_us is not None else None
    streaming_us = call.latency_us
    if call.stream and call.ttfb_us is not None:
        streaming_us = max(0, call.latency_us - call.ttfb_us)
    return {
        # OpenRouter's fields.
        "id": call.event_id,
        "upstream_id": call.response_id or None,
        "total_cost": _number(call.cost),
        "cache_discount": None,
        "upstream_inference_cost": None,
        "usage": _number(call.charged),
        "created_at": call.started_at.isoformat(),
        "model": call.model,
        "provider_name": call.provider or None,
        "app_id": None,
        "streamed": call.stream,
        "cancelled": call.client_disconnected or call.error_code in CANCELLED_CODES,
        "latency": _ms(call.latency_us),
        "moderation_latency": None,
        "generation_time": _ms(streaming_us),
        "finish_reason": None,
        "native_finish_reason": None,
        "tokens_prompt": prompt,
        "tokens_completion": completion,
        "native_tokens_prompt": prompt,
        "native_tokens_completion": completion,
        "native_tokens_completion_images": None,
        "native_tokens_reasoning": call.reasoning_tokens,
        "native_tokens_cached": call.cache_read_tokens,
        "num_media_prompt": None,
        "num_input_audio_prompt": None,
        "num_media_completion": None,
        "num_search_results": None,
        "origin": None,
        "is_byok": False,
        "external_user": None,
        "api_type": None,
        "router": None,
        "provider_responses": None,
        "service_tier": call.service_tier or None,
        "request_id": call.request_id,
        # TokenByte's own.
        "response_id": call.response_id or None,
        "endpoint": call.endpoint,
        "status": call.status,
        "error_code": call.error_code or None,
        "time_to_first_byte": ttfb,
        "native_tokens_cache_write": call.cache_write_tokens,
        "native_tokens_cache_write_1h": call.cache_write_1h_tokens,
        "tokens_estimated": call.estimated,
        "server_tool_calls": dict(call.server_tool_calls),
        "num_attempts": call.attempts,
        "upstream_request_id": call.upstream_request_id or None,
    }
