"""The call path every model endpoint shares: authenticate, record, admit, open the upstream
(failover), then complete a whole answer or relay a stream (pipeline/relay.py)."""

from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

import orjson

from billing.events import UsageEvent
from billing.usage import Usage
from proxy.gateway.auth.authenticate import authenticate
from proxy.gateway.auth.key_cache import KeyResolver
from proxy.gateway.auth.policy import KeyPolicy
from proxy.gateway.errors import GatewayError
from proxy.gateway.http import JSON_CONTENT_TYPE, Request, Response
from proxy.gateway.limits import RateLimiter
from proxy.gateway.pipeline.calls import CallRecord
from proxy.gateway.pipeline.resolve import Catalog, resolve_card
from proxy.gateway.routing import Card
from proxy.providers.base import ProviderAdapter
from proxy.upstream.failures import cite_request, log_failed_answer, log_refusal
from proxy.upstream.pool import Opened, UpstreamPool, timeouts_for
from proxy.upstream.request import UpstreamRequest

Parse = Callable[[bytes], tuple[dict[str, Any], Usage]]
Render = Callable[[dict[str, Any], Usage, Decimal], dict[str, Any]]


class Pipeline:
    """What the model endpoints use, and nothing else of the process's runtime."""

    __slots__ = ("catalog", "keys", "limiter", "meter", "new_id", "upstreams")

    def __init__(
        self,
        *,
        keys: KeyResolver,
        catalog: Catalog,
        limiter: RateLimiter,
        upstreams: UpstreamPool,
        meter: Callable[[UsageEvent], None],
        new_id: Callable[[], str],
    ) -> None:
        self.keys = keys
        self.catalog = catalog
        self.limiter = limiter
        self.upstreams = upstreams
        self.meter = meter
        self.new_id = new_id

    def authenticate(
        self, request: Request, *, allow_x_api_key: bool = False
    ) -> Coroutine[Any, Any, KeyPolicy]:
        """The request's key policy (to await); a refusal here is a metric, not a usage event."""
        return authenticate(request, self.keys, allow_x_api_key=allow_x_api_key)

    def record(self, request: Request, policy: KeyPolicy, endpoint: str) -> CallRecord:
        """The call's record: use it as a context manager, which emits its one event."""
        return CallRecord(
            request_id=request.request_id,
            new_id=self.new_id,
            sink=self.meter,
            endpoint=endpoint,
            policy=policy,
        )

    async def admit(
        self,
        record: CallRecord,
        model: str,
        *,
        card_type: str,
        stream: bool,
        rate_limited: bool = True,
    ) -> Card:
        """The card the client named, if its key may use it and its rate limits allow."""
        record.model, record.stream = model, stream
        card = resolve_card(self.catalog.current(), model, card_type=card_type)
        record.card = card
        policy = record.policy
        policy.check_card(card)
        if rate_limited and (policy.rpm or policy.tpm):  # most keys have neither: no await
            record.headers = await self.limiter.admit(policy)
        return card

    async def open_upstream(
        self,
        record: CallRecord,
        adapter: ProviderAdapter,
        build: Callable[[Any], UpstreamRequest],
        *,
        stream: bool,
    ) -> Opened:
        """The upstream's accepted answer (failing over between credentials), or its refusal
        raised as the client's error."""
        card = record.card
        if card is None:
            raise RuntimeError("open_upstream() before admit()")
        opened = await self.upstreams.open(
            self.catalog.current().upstreams_for(card),
            build,
            timeouts_for(card),
            stream=stream,
            provider=card.provider,
            record=record,
            rejects_credential=adapter.rejects_credential,
        )
        record.upstream_request_id = opened.upstream_request_id()
        if opened.response.status_code >= 400:
            log_refusal(record, opened.upstream, opened.response.status_code, opened.body)
            status = opened.response.status_code
            raise cite_request(adapter.client_error(status, opened.body, card), record.request_id)
        return opened

    @staticmethod
    def complete(record: CallRecord, opened: Opened, parse: Parse, render: Render) -> Response:
        """A whole upstream answer: parsed, settled (priced once), rendered for the client."""
        try:
            data, usage = parse(opened.body)
        except GatewayError as error:
            # The upstream did the work (and bills us) but its answer is unusable: the record
            # still tells of it.
            log_failed_answer(record, cite_request(error, record.request_id))
            raise
        record.mark_first_byte()
        event = record.settle(usage)
        data = render(data, usage, event.cost)
        return Response(200, orjson.dumps(data), [JSON_CONTENT_TYPE, *record.headers])
