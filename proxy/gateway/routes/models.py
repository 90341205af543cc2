"""GET /v1/models and GET /v1/models/{id}: OpenAI's list format, or Anthropic's Models API
shape when the request carries an `anthropic-version` header (Anthropic's SDKs and Claude Code
send it), so their model pickers list the catalog titles."""

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import orjson

from proxy.gateway.auth.authenticate import authenticate_optional
from proxy.gateway.auth.key_cache import KeyResolver
from proxy.gateway.errors import GatewayError, InvalidRequest
from proxy.gateway.http import JSON_CONTENT_TYPE, Request, Response
from proxy.gateway.pipeline.resolve import Catalog, model_not_found
from proxy.gateway.routing import Card

MODELS_PREFIX = "/v1/models/"
# Anthropic's Models API pages: `limit` defaults to 20 and ranges from 1 to 1000.
DEFAULT_LIMIT, MAX_LIMIT = 20, 1000


def wants_anthropic(request: Request) -> bool:
    return request.header(b"anthropic-version") is not None


async def list_models(request: Request, keys: KeyResolver, catalog: Catalog) -> Response:
    """Public; with a key, only the models its allowlist admits."""
    anthropic = wants_anthropic(request)
    try:
        policy = await authenticate_optional(request, keys, allow_x_api_key=anthropic)
        routing = catalog.current()
        cards = None
        if policy is not None and policy.allowed_models:
            cards = [card for card in routing.cards if policy.allows_card(card)]
        if anthropic:
            listed = list(routing.cards) if cards is None else cards
            return Response.json(anthropic_page(listed, request.scope.get("query_string", b"")))
    except GatewayError as error:
        if anthropic:
            return anthropic_error(error)
        raise
    return Response(200, routing.list_json(cards), [JSON_CONTENT_TYPE])


async def retrieve_model(request: Request, keys: KeyResolver, catalog: Catalog) -> Response:
    anthropic = wants_anthropic(request)
    try:
        policy = await authenticate_optional(request, keys, allow_x_api_key=anthropic)
        routing = catalog.current()
        name = request.path[len(MODELS_PREFIX) :]
        card = routing.resolve(name)
        if card is None or (anthropic and card.type != "chat"):
            raise model_not_found(routing, name, param=None)
        if policy is not None:
            policy.check_card(card)
    except GatewayError as error:
        if anthropic:
            return anthropic_error(error)
        raise
    if anthropic:
        return Response.json(anthropic_model(card))
    return Response(200, routing.entry_json(card), [JSON_CONTENT_TYPE])


# --- Anthropic's Models API -----------------------------------------------------------------


def anthropic_model(card: Card) -> dict[str, Any]:
    """A ModelInfo: `id` is the catalog title (the `model` to send), as everywhere."""
    return {
        "type": "model",
        "id": card.title,
        "display_name": card.title,
        "created_at": datetime.fromtimestamp(card.created, UTC).isoformat().replace("+00:00", "Z"),
        "lifecycle": "active",
        "max_input_tokens": card.context_length,
        "max_tokens": card.max_output_tokens,
    }


def anthropic_page(cards: list[Card], query_string: bytes) -> dict[str, Any]:
    """One page of chat models (the Messages API serves no other kind), in catalog order,
    paged as Anthropic's API pages: `limit`, then `after_id` or `before_id` (model ids)."""
    chat = [card for card in cards if card.type == "chat"]
    query = {key: values[-1] for key, values in parse_qs(query_string.decode("latin-1")).items()}
    raw_limit = query.get("limit", str(DEFAULT_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise InvalidRequest(
            f"limit: must be an integer from 1 to {MAX_LIMIT}; got {raw_limit!r}.", param="limit"
        )
    limit = int(raw_limit)
    after, before = query.get("after_id"), query.get("before_id")
    if after is not None and before is not None:
        raise InvalidRequest("after_id and before_id cannot be used together.", param="after_id")
    titles = [card.title for card in chat]
    if before is not None:
        end = _position(titles, before, "before_id")
        start = max(0, end - limit)
        page, has_more = chat[start:end], start > 0
    else:
        start = _position(titles, after, "after_id") + 1 if after is not None else 0
        page = chat[start : start + limit]
        has_more = start + limit < len(chat)
    return {
        "data": [anthropic_model(card) for card in page],
        "has_more": has_more,
        "first_id": page[0].title if page else None,
        "last_id": page[-1].title if page else None,
    }


def _position(titles: list[str], cursor: str, param: str) -> int:
    try:
        return titles.index(cursor)
    except ValueError:
        raise InvalidRequest(
            f"{param}: no model with the id {cursor!r} in this list.", param=param
        ) from None


def anthropic_error(error: GatewayError) -> Response:
    return Response(
        error.status, orjson.dumps(error.anthropic_payload()), [*error.headers, JSON_CONTENT_TYPE]
    )
