"""The call path every model endpoint shares: authenticate, record, admit, open the upstream
(failover), then complete a whole answer or relay a stream (pipeline/relay.py)."""

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from billing.bodies import CapturedBodies
from billing.events import UsageEvent
from billing.periods import budget_window
from billing.pricing import price_text
from billing.usage import Usage
from proxy.gateway.auth.authenticate import authenticate
from proxy.gateway.auth.key_cache import KeyResolver
from proxy.gateway.auth.policy import KeyPolicy
from proxy.gateway.errors import GatewayError, PaymentRequired
from proxy.gateway.http import JSON_CONTENT_TYPE, Request, Response
from proxy.gateway.limits import RateLimiter
from proxy.gateway.pipeline.bodies import BodyCapture
from proxy.gateway.pipeline.calls import CallRecord
from proxy.gateway.pipeline.ceiling import Fit, OutputLimit, ServerTool, WorstCase, worst_case
from proxy.gateway.pipeline.resolve import Catalog, resolve_card
from proxy.gateway.purse import Purse
from proxy.gateway.routing import Card
from proxy.providers.base import ProviderAdapter
from proxy.upstream.failures import cite_request, log_failed_answer, log_refusal
from proxy.upstream.pool import Opened, UpstreamPool, timeouts_for
from proxy.upstream.request import UpstreamRequest

# The gateway's own id of the call (its usage event's), on every answer that reserved a cost.
GENERATION_ID_HEADER = b"x-tokenbyte-generation-id"
Parse = Callable[[bytes], tuple[dict[str, Any], Usage]]
Render = Callable[[dict[str, Any], Usage, Decimal], dict[str, Any]]


class Pipeline:
    """What the model endpoints use, and nothing else of the process's runtime."""

    __slots__ = (
        "bodies",
        "body_limit",
        "catalog",
        "keys",
        "limiter",
        "meter",
        "new_id",
        "purse",
        "upstreams",
    )

    def __init__(
        self,
        *,
        keys: KeyResolver,
        catalog: Catalog,
        limiter: RateLimiter,
        upstreams: UpstreamPool,
        purse: Purse,
        meter: Callable[[UsageEvent], "asyncio.Future[bool] | None"],
        new_id: Callable[[], str],
        bodies: Callable[[CapturedBodies], None] | None = None,
        body_limit: int = 0,
    ) -> None:
        self.purse = purse
        self.keys = keys
        self.catalog = catalog
        self.limiter = limiter
        self.upstreams = upstreams
        self.meter = meter
        self.new_id = new_id
        # Body logging: where captured bodies go (proxy/gateway/bodylog.py), and their limit.
        self.bodies = bodies
        self.body_limit = body_limit

    def authenticate(
        self, request: Request, *, allow_x_api_key: bool = False
    ) -> Coroutine[Any, Any, KeyPolicy]:
        """The request's key policy (to await); a refusal here is a metric, not a usage event."""
        return authenticate(request, self.keys, allow_x_api_key=allow_x_api_key)

    def record(self, request: Request, policy: KeyPolicy, endpoint: str) -> CallRecord:
        """The call's record: use it as a context manager, which emits its one event."""
        sink = self.meter
        if policy.log_bodies and self.bodies is not None:  # the one test other accounts pay
            capture = BodyCapture(request, limit=self.body_limit, deliver=self.bodies)
            sink = capture.metered(sink)
        return CallRecord(
            request_id=request.request_id,
            new_id=self.new_id,
            sink=sink,
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

    async def reserve(
        self,
        record: CallRecord,
        raw: bytes,
        output: OutputLimit | None,
        *,
        long_context: bool = False,
        service_tier: str | None = None,
        tools: Sequence[ServerTool] = (),
        stored_context: bool = False,
    ) -> None:
        """Hold the call's worst case (ceiling.py) against the key's per-request cap, what is
        left of its budget and the account's available balance, lowering its server tools'
        calls and then its output limit to fit the smallest of the three; PaymentRequired
        (402) naming it when nothing fits."""
        card, policy = record.card, record.policy
        if card is None:
            raise RuntimeError("reserve() before admit()")
        worst = worst_case(
            card,
            raw,
            output,
            long_context=long_context,
            service_tier=service_tier,
            tools=tools,
            stored_context=stored_context,
        )
        fit = Fit(worst.output_tokens, worst.uses)
        cap = policy.max_request_cost
        if cap is not None:
            capped = worst.fit(cap)
            if capped is None:
                raise _short_of_cap(worst, cap)
            fit = capped
        window = None
        if policy.budget is not None:
            window = budget_window(policy.budget_period, datetime.now(UTC))
        record.event_id = self.new_id()  # the hold's id, and later its usage event's
        # Told to the client with the answer: GET /v1/generation?id=… finds the call by it.
        record.headers = [*record.headers, (GENERATION_ID_HEADER, record.event_id.encode())]
        for _ in range(3):  # others' calls may take what was left between two tries
            verdict = await self.purse.reserve(
                record.event_id,
                account_id=policy.account_id,
                key_id=policy.key_id,
                budget=policy.budget,
                window=window.name if window is not None else None,
                amount=worst.cost(fit.output_tokens, fit.uses),
            )
            if verdict.held:
                break
            ceiling, short = verdict.available, "balance"
            if verdict.budget_left is not None and verdict.budget_left < ceiling:
                ceiling, short = verdict.budget_left, "budget"
            if cap is not None and cap < ceiling:
                ceiling, short = cap, "cap"
            fitted = worst.fit(ceiling)
            if fitted is None:
                if short == "budget" and window is not None and policy.budget is not None:
                    raise _short_of_budget(worst, policy.budget, ceiling, window.resets_at)
                raise _short_of_balance(worst, ceiling)
            fit = Fit(min(fitted.output_tokens, fit.output_tokens), min(fitted.uses, fit.uses))
        else:  # three tries, each outrun by other calls: what the last one found
            raise _short_of_balance(worst, verdict.available)
        if fit.uses < worst.uses:
            for tool in worst.tools:
                if tool.lower is not None:
                    tool.lower(fit.uses)
            record.headers = [*record.headers, (b"x-tokenbyte-max-uses", str(fit.uses).encode())]
        limit = fit.output_tokens
        if output is not None and output.lower is not None and limit < worst.output_tokens:
            output.lower(limit)
            record.headers = [*record.headers, (b"x-tokenbyte-max-tokens", str(limit).encode())]

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
    async def complete(
        record: CallRecord, opened: Opened, parse: Parse, render: Render
    ) -> Response:
        """A whole upstream answer: parsed, settled (priced once), rendered for the client, and
        handed back once its usage event is durable."""
        try:
            data, usage = parse(opened.body)
        except GatewayError as error:
            # The upstream did the work (and bills us) but its answer is unusable: the record
            # still tells of it.
            log_failed_answer(record, cite_request(error, record.request_id))
            raise
        record.mark_first_byte()
        # Rendered before it is settled, so that its event knows the `id` the client gets; an
        # error while rendering still bills this usage.
        record.usage = usage
        cost = record.cost_of(usage)
        rendered = render(data, usage, cost)
        response_id = rendered.get("id")
        if isinstance(response_id, str) and response_id:
            record.response_id = response_id
        record.settle(usage, cost=cost)
        response = Response(200, orjson.dumps(rendered), [JSON_CONTENT_TYPE, *record.headers])
        record.hand_over()
        await record.until_durable()
        return response


def _least(worst: WorstCase) -> str:
    uses = min(worst.uses, 1)
    if worst.output is None:
        return f"${price_text(worst.cost(uses=uses))}"
    least = worst.output.minimum
    searches = " and one call of each server tool" if uses else ""
    return (
        f"${price_text(worst.cost(least, uses))} even with its output cut to {least} tokens"
        f"{searches}"
    )


def _short_of_cap(worst: WorstCase, cap: Decimal) -> PaymentRequired:
    return PaymentRequired(
        f"This request could cost up to {_least(worst)}, over this API key's per-request "
        f"cap of ${price_text(cap)}. Send a shorter prompt, or raise the cap under /keys/.",
        code="request_cost_cap",
    )


def _short_of_budget(
    worst: WorstCase, budget: Decimal, left: Decimal, resets_at: datetime | None
) -> PaymentRequired:
    resets = f" It resets at {resets_at:%Y-%m-%d %H:%M} UTC." if resets_at is not None else ""
    return PaymentRequired(
        f"This API key's budget of ${price_text(budget)} has ${price_text(left)} left, less "
        f"than this request could cost ({_least(worst)}).{resets}",
        code="budget_exhausted",
    )


def _short_of_balance(worst: WorstCase, available: Decimal) -> PaymentRequired:
    return PaymentRequired(
        f"The account's balance has ${price_text(available)} available, less than this "
        f"request could cost ({_least(worst)}). Add credit under /billing/.",
        code="insufficient_balance",
    )
