"""GET /v1/responses/{id}, DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items and
POST /v1/responses/{id}/cancel: the responses the gateway stored (POST /v1/responses with
`store` to a card it translates), each its account's own; another account's id is answered as
nobody's. Responses OpenAI stored for OpenAI cards stay OpenAI's: the gateway does not fetch
them. Not model calls: no usage event, no reservation, no rate-limit cost (as GET /v1/models).
"""

from urllib.parse import parse_qs

from proxy.gateway.auth.authenticate import authenticate
from proxy.gateway.auth.key_cache import KeyResolver
from proxy.gateway.dialects.responses_output import ENCRYPTED
from proxy.gateway.dialects.responses_state import (
    PAGE_DEFAULT,
    PAGE_MAX,
    page,
    stored_body,
)
from proxy.gateway.dialects.validation import invalid_value
from proxy.gateway.errors import InvalidRequest, NotFound
from proxy.gateway.http import Request, Response
from proxy.gateway.stored_responses import StoredResponses

RESPONSES_PREFIX = "/v1/responses/"
SERVED = frozenset({("GET", ""), ("DELETE", ""), ("GET", "input_items"), ("POST", "cancel")})


async def stored_response(request: Request, keys: KeyResolver, stored: StoredResponses) -> Response:
    policy = await authenticate(request, keys)
    response_id, _, action = request.path[len(RESPONSES_PREFIX) :].partition("/")
    query = parse_qs(request.scope.get("query_string", b"").decode("latin-1"))
    account = policy.account_id
    method = request.method
    if (method, action) not in SERVED:
        raise NotFound(f"Unknown endpoint: {method} {request.path}.", code="unknown_url")
    if method == "POST" and action == "cancel":
        if await stored.get(account, response_id) is None:
            raise _not_found(response_id, stored)
        raise InvalidRequest(
            "Only responses created with background=true can be cancelled; this one finished "
            "before its request ended.",
            param="response_id",
            code="invalid_value",
        )
    if method == "DELETE":
        if not await stored.delete(account, response_id):
            raise _not_found(response_id, stored)
        return Response.json({"id": response_id, "object": "response", "deleted": True})
    if action == "input_items":
        items = await stored.input_items(account, response_id)
        if items is None:
            raise _not_found(response_id, stored)
        after = query.get("after", [None])[0]
        return Response.json(page(items, after=after, limit=_limit(query), order=_order(query)))
    found = await stored.get(account, response_id)
    if found is None:
        raise _not_found(response_id, stored)
    included = query.get("include[]", []) + query.get("include", [])
    head, output = found
    return Response(200, stored_body(head, output, encrypted=ENCRYPTED in included))


def _not_found(response_id: str, stored: StoredResponses) -> NotFound:
    why = (
        "the gateway keeps the responses it makes for non-OpenAI models when sent with store: "
        "true, for a set time; an OpenAI model's stay with OpenAI (continue one by "
        "previous_response_id)"
        if stored.enabled
        else "this gateway stores no responses (TOKENBYTE_STORE_RESPONSES is off); keep the "
        "output items and send them back in 'input', as Codex does"
    )
    return NotFound(
        f"Response with id {response_id[:128]!r} not found: {why}.",
        param="response_id",
        code="response_not_found",
    )


def _limit(query: dict[str, list[str]]) -> int:
    given = query.get("limit", [str(PAGE_DEFAULT)])[0]
    if not given.isdigit() or not 1 <= int(given) <= PAGE_MAX:
        raise invalid_value("limit", f"limit: an integer from 1 to {PAGE_MAX}, not {given!r}.")
    return int(given)


def _order(query: dict[str, list[str]]) -> str:
    given = query.get("order", ["desc"])[0]
    if given not in ("asc", "desc"):
        raise invalid_value("order", f"order: 'asc' or 'desc', not {given!r}.")
    return given
