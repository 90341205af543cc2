"""The call record: one request's story, told as exactly one usage event when it ends.

A record opens once the request's key is known (`with pipeline.record(...) as record:`) and
emits on leaving the block, whichever way it is left: the settled event when the call ran to
its end, otherwise an event for how it ended (a gateway error, another exception, the client
leaving, cancellation at shutdown), with whatever usage the upstream had reported by then.
Nothing else emits usage events, so there is no exit path that emits none or two.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

import orjson

from billing.events import UpstreamAttempt, UsageEvent
from billing.pricing import cost_text, usage_cost
from billing.usage import Usage
from proxy.gateway.auth.policy import KeyPolicy
from proxy.gateway.errors import GatewayError
from proxy.gateway.http import ClientDisconnected
from proxy.gateway.routing import Card, Upstream

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
ZERO_USAGE = Usage()
# What the client named is kept on events of requests no card was found for; a client may send
# a model string of any length.
MAX_MODEL_NAME = 200
# nginx's code for "the client closed the connection before the answer".
CLIENT_CLOSED_STATUS = 499


@dataclass(slots=True)
class CallRecord:
    """Filled in as a request travels; turned into exactly one UsageEvent when it ends."""

    request_id: str
    new_id: Callable[[], str]
    # Takes the event; with Redis, returns a future resolved once the event is durable there.
    sink: Callable[[UsageEvent], "asyncio.Future[bool] | None"]
    endpoint: str
    policy: KeyPolicy
    card: Card | None = None
    model: str = ""  # what the client named, until a card is found for it
    stream: bool = False
    started_at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    first_byte: float | None = None
    upstream: Upstream | None = None
    attempts: int = 0
    attempt_log: tuple[UpstreamAttempt, ...] = ()
    upstream_request_id: str | None = None
    # The answer's own `id` as the client got it; `identify`, when set (a stream), says it at
    # the end (the first chunk carries it).
    response_id: str | None = None
    identify: Callable[[], str] | None = None
    # Sent with the answer, whatever its shape (the key's rate-limit state).
    headers: Sequence[tuple[bytes, bytes]] = ()
    # The status the client has already been sent (a stream's 200), if any.
    response_status: int | None = None
    # What the upstream has reported so far; `measure`, when set (a stream), says it at the end.
    usage: Usage = ZERO_USAGE
    measure: Callable[[], Usage] | None = None
    # Chosen when the call's worst case is held (its reservation's id), else at the end.
    event_id: str | None = None
    _settled: UsageEvent | None = None
    _emitted: bool = False
    _durable: "asyncio.Future[bool] | None" = None

    @property
    def provider(self) -> str:
        return self.card.provider if self.card is not None else "the provider"

    def note_attempt(
        self, upstream: Upstream, started: float, status: int | None, error_code: str | None
    ) -> None:
        now = time.perf_counter()
        self.attempt_log += (
            UpstreamAttempt(
                credential_id=upstream.id,
                started_ms=round((started - self.started) * 1000, 3),
                duration_ms=round((now - started) * 1000, 3),
                status=status,
                error_code=error_code,
            ),
        )

    def mark_first_byte(self) -> None:
        if self.first_byte is None:
            self.first_byte = time.perf_counter()

    def settle(
        self,
        usage: Usage,
        *,
        error_code: str | None = None,
        client_disconnected: bool = False,
        cost: Decimal | None = None,
    ) -> UsageEvent:
        """The event of a call that ran to its end, priced for the answer's last bytes.

        It is emitted on leaving the block, or by `hand_over` before those bytes are sent; an
        exception in between (rendering the answer, say) replaces it with an error event that
        keeps this usage. `cost`, when given, is this usage's already priced (`cost_of`).
        """
        self.usage = usage
        self._settled = self._event(
            status=self.response_status or 200,
            error_code=error_code,
            client_disconnected=client_disconnected,
            cost=cost,
        )
        return self._settled

    def cost_of(self, usage: Usage) -> Decimal:
        """What `usage` costs on the call's card (the one pricing function, as the event's)."""
        return usage_cost(usage, self.card.prices) if self.card is not None else ZERO

    def hand_over(self) -> None:
        """Emit the settled event now (a stream's, before its final bytes leave)."""
        if self._settled is None:
            raise RuntimeError("hand_over() before settle()")
        self._emit(self._settled)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._emitted:
            return
        if exc is None and self._settled is not None:
            self._emit(self._settled)
            return
        self._emit(self._ending(exc))

    def _ending(self, exc: BaseException | None) -> UsageEvent:
        """The event of a call that did not run to its end (or left without settling)."""
        if self.measure is not None:
            try:
                self.usage = self.measure()
            except Exception:  # the event must still go out, with the usage known before
                logger.exception("request %s: reading the stream's usage failed", self.request_id)
        if isinstance(exc, GatewayError):
            return self._event(status=self.response_status or int(exc.status), error_code=exc.code)
        if isinstance(exc, ClientDisconnected):
            return self._event(
                status=CLIENT_CLOSED_STATUS,
                error_code="client_disconnected",
                client_disconnected=True,
            )
        if isinstance(exc, asyncio.CancelledError):
            # The server stopped the request (shutdown); the client gets no more.
            return self._event(status=self.response_status or 500, error_code="cancelled")
        if exc is None:
            logger.error("request %s: the call ended without an outcome", self.request_id)
        return self._event(status=self.response_status or 500, error_code="internal_error")

    def _emit(self, event: UsageEvent) -> None:
        self._emitted = True
        self._durable = self.sink(event)

    async def until_durable(self) -> None:
        """Wait until the emitted event is durable (metering bounds the wait: pipeline/
        metering.py DURABLE_WAIT_SECONDS): a served answer's last bytes leave only once its
        charge cannot be lost with this process."""
        durable = self._durable
        if durable is not None and not durable.done() and not await durable:
            logger.warning("request %s: answered before its usage was durable", self.request_id)

    def _event(
        self,
        *,
        status: int,
        error_code: str | None,
        client_disconnected: bool = False,
        cost: Decimal | None = None,
    ) -> UsageEvent:
        now = time.perf_counter()
        card = self.card
        response_id = self.response_id
        if response_id is None and self.identify is not None:
            try:
                response_id = self.identify() or None
            except Exception:  # the event must still go out, without the id
                logger.exception("request %s: reading the answer's id failed", self.request_id)
        return UsageEvent(
            event_id=self.event_id or self.new_id(),
            request_id=self.request_id,
            endpoint=self.endpoint,
            key_id=self.policy.key_id,
            account_id=self.policy.account_id,
            card_id=card.id if card is not None else None,
            model=card.title if card is not None else self.model[:MAX_MODEL_NAME],
            provider=card.provider if card is not None else None,
            upstream_model=card.upstream_id if card is not None else None,
            credential_id=self.upstream.id if self.upstream else None,
            status=status,
            error_code=error_code,
            stream=self.stream,
            usage=self.usage,
            cost=self.cost_of(self.usage) if cost is None else cost,
            started_at=self.started_at,
            latency_ms=round((now - self.started) * 1000, 3),
            ttfb_ms=None
            if self.first_byte is None
            else round((self.first_byte - self.started) * 1000, 3),
            attempts=self.attempts,
            client_disconnected=client_disconnected,
            upstream_request_id=self.upstream_request_id,
            response_id=response_id,
            attempt_log=self.attempt_log,
        )


def priced_usage(original: Any, usage: Usage, cost: Decimal) -> dict[str, Any]:
    """The client-facing usage object: the upstream's extras kept, our counts and cost on top."""
    result: dict[str, Any] = dict(original) if isinstance(original, dict) else {}
    for key, value in usage.openai_dict().items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = {**result[key], **value}
        else:
            result[key] = value
    result["cost"] = orjson.Fragment(cost_text(cost).encode())
    return result


__all__ = ["ZERO", "ZERO_USAGE", "CallRecord", "priced_usage"]
