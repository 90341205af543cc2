"""The call path every endpoint shares: admit, open the upstream (failover), complete, meter."""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

from billing.usage import Usage
from proxy.gateway.auth.policy import KeyPolicy
from proxy.gateway.errors import GatewayError
from proxy.gateway.http import JSON_CONTENT_TYPE, Request, Response
from proxy.gateway.pipeline.calls import CallRecord
from proxy.gateway.pipeline.resolve import routing_or_503
from proxy.gateway.routing import Card
from proxy.gateway.runtime import Runtime
from proxy.providers.base import ProviderAdapter
from proxy.upstream.failures import cite_request, log_failed_answer, log_refusal
from proxy.upstream.pool import Opened, timeouts_for

ZERO_USAGE = Usage()


async def start_call(
    request: Request,
    runtime: Runtime,
    policy: KeyPolicy,
    card: Card,
    endpoint: str,
    *,
    stream: bool,
    rate_limited: bool = True,
) -> CallRecord:
    """Admit a call (the key's allowlist and rate limits) and open its record."""
    policy.check_card(card)
    headers = await runtime.limits.admit(policy) if rate_limited else []
    return CallRecord(
        request_id=request.request_id,
        new_id=runtime.ids,
        endpoint=endpoint,
        card=card,
        key_id=policy.key_id,
        account_id=policy.account_id,
        stream=stream,
        headers=headers,
    )


async def open_upstream(
    runtime: Runtime, record: CallRecord, adapter: ProviderAdapter, build: Any, *, stream: bool
) -> Opened:
    """Open the upstream call; on failure emit the request's event, then raise."""
    card = record.card
    try:
        opened = await runtime.upstreams.open(
            routing_or_503(runtime).upstreams_for(card),
            build,
            timeouts_for(card),
            stream=stream,
            provider=card.provider,
            record=record,
            rejects_credential=adapter.rejects_credential,
        )
    except GatewayError as error:
        runtime.metering.emit(
            record.event(status=error.status, usage=ZERO_USAGE, error_code=error.code)
        )
        raise
    record.upstream_request_id = opened.upstream_request_id()
    if opened.response.status_code >= 400:
        log_refusal(record, opened.upstream, opened.response.status_code, opened.body)
        refusal = cite_request(
            adapter.client_error(opened.response.status_code, opened.body, card), record.request_id
        )
        runtime.metering.emit(
            record.event(status=refusal.status, usage=ZERO_USAGE, error_code=refusal.code)
        )
        raise refusal
    return opened


def complete(
    runtime: Runtime,
    record: CallRecord,
    opened: Opened,
    parse: Callable[[bytes], tuple[dict[str, Any], Usage]],
    render: Callable[[dict[str, Any], Usage, Decimal], dict[str, Any]],
) -> Response:
    """A whole upstream answer: parsed, metered once, priced into the client's body."""
    try:
        data, usage = parse(opened.body)
    except GatewayError as error:
        # The upstream did the work (and bills us) but its answer is unusable: still recorded.
        runtime.metering.emit(
            record.event(status=error.status, usage=ZERO_USAGE, error_code=error.code)
        )
        log_failed_answer(record, cite_request(error, record.request_id))
        raise
    record.mark_first_byte()
    event = record.event(status=200, usage=usage)
    data = render(data, usage, event.cost)
    runtime.metering.emit(event)
    return Response(200, orjson.dumps(data), [JSON_CONTENT_TYPE, *record.headers])
