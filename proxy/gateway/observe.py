"""What operators see of each API request: its metrics and one access-log line.

`observe` takes every usage event on its way to metering (the one emission point: the
pipeline's sink, proxy/gateway/runtime.py), so each authenticated request is seen exactly once,
whichever way it ended; `refused_before_auth` does the same for requests refused before their
key was known (no event: no account). The access log is the logger `tokenbyte.access`, one JSON
object per line; the line is built only when that logger is enabled for INFO
(TOKENBYTE_ACCESS_LOG, tokenbyte/settings.py). It carries identifiers, the outcome and the
counts, never a key, a body or an upstream credential.

Label values are bounded: a request no card was found for is counted under the model
"unknown", whatever it named.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from billing.events import UsageEvent
from proxy.gateway.errors import GatewayError
from tokenbyte.metrics import (
    REFUSALS,
    REQUEST_DURATION,
    REQUESTS,
    REQUESTS_REFUSED_BEFORE_AUTH,
    TIME_TO_FIRST_BYTE,
    TOKENS,
    UPSTREAM_ATTEMPTS,
    UPSTREAM_ERRORS,
)

if TYPE_CHECKING:  # imported only when tracing is on
    from proxy.gateway.spans import Spans

ACCESS_LOG = logging.getLogger("tokenbyte.access")
UNKNOWN = "unknown"  # the model and provider labels of a request no card was found for
REFUSAL_STATUSES = frozenset({402, 429})
_INFO = logging.INFO
logger = logging.getLogger(__name__)

Sink = Callable[[UsageEvent], "asyncio.Future[bool] | None"]

# Label children by their values, created once: `.labels()` checks and locks on every call.
# The values are bounded (see above), so these stay small.
_requests: dict[tuple[str, str, str, int], Any] = {}
_durations: dict[tuple[str, str, str], Any] = {}
_ttfbs: dict[tuple[str, str], Any] = {}
_tokens: dict[tuple[str, str], tuple[Any, Any]] = {}


def observed(sink: Sink, spans: "Spans | None" = None) -> Sink:
    """`sink` (metering), each event observed once it has been handed to it, and traced when
    tracing is on (`spans`: proxy/gateway/tracing.py)."""

    def emit(event: UsageEvent) -> "asyncio.Future[bool] | None":
        durable = sink(event)  # first: no failure here may cost the charge
        try:
            observe(event)
        except Exception:
            logger.exception("request %s: observing its usage event failed", event.request_id)
        if spans is not None:
            try:
                spans.export(event)
            except Exception:
                logger.exception("request %s: tracing its usage event failed", event.request_id)
        return durable

    return emit


def observe(event: UsageEvent) -> None:
    """Count the request the event tells of, and write its access-log line."""
    provider = event.provider
    if provider is None:  # no card was found: whatever the client named stays out of labels
        model = provider = UNKNOWN
    else:
        model = event.model
    endpoint, status = event.endpoint, event.status
    key = (endpoint, model, provider, status)
    child = _requests.get(key)
    if child is None:
        child = _requests[key] = REQUESTS.labels(endpoint, model, provider, str(status))
    child.inc()
    series = (endpoint, model, provider)
    duration = _durations.get(series)
    if duration is None:
        duration = _durations[series] = REQUEST_DURATION.labels(*series)
    duration.observe(event.latency_ms / 1000)
    if event.stream and event.ttfb_ms is not None:
        pair = (model, provider)
        ttfb = _ttfbs.get(pair)
        if ttfb is None:
            ttfb = _ttfbs[pair] = TIME_TO_FIRST_BYTE.labels(model, provider)
        ttfb.observe(event.ttfb_ms / 1000)
    usage = event.usage
    tokens_in, tokens_out = usage.prompt_tokens, usage.completion_tokens
    if tokens_in or tokens_out:
        pair = (model, provider)
        counters = _tokens.get(pair)
        if counters is None:
            counters = _tokens[pair] = (
                TOKENS.labels(model, provider, "in"),
                TOKENS.labels(model, provider, "out"),
            )
        if tokens_in:
            counters[0].inc(tokens_in)
        if tokens_out:
            counters[1].inc(tokens_out)
    if event.attempts:
        _upstream(event, provider)
    if status in REFUSAL_STATUSES:
        REFUSALS.labels(event.error_code or str(status)).inc()
    if ACCESS_LOG.isEnabledFor(_INFO):
        ACCESS_LOG.info(access_line(event, tokens_in, tokens_out))


def _upstream(event: UsageEvent, provider: str) -> None:
    UPSTREAM_ATTEMPTS.labels(provider, "final").inc()
    if event.attempts > 1:
        UPSTREAM_ATTEMPTS.labels(provider, "retry").inc(event.attempts - 1)
    for attempt in event.attempt_log:
        if attempt.error_code is not None:
            UPSTREAM_ERRORS.labels(provider, str(attempt.credential_id), attempt.error_code).inc()


def access_line(event: UsageEvent, tokens_in: int, tokens_out: int) -> str:
    """The event as one JSON line: what happened, never what was said."""
    line = orjson.dumps(
        {
            "time": round(time.time(), 3),
            "request_id": event.request_id,
            "event_id": event.event_id,
            "key_id": event.key_id,
            "account_id": event.account_id,
            "endpoint": event.endpoint,
            "model": event.model,
            "provider": event.provider,
            "credential_id": event.credential_id,
            "status": event.status,
            "error_code": event.error_code,
            "latency_ms": event.latency_ms,
            "ttfb_ms": event.ttfb_ms,
            "attempts": event.attempts,
            "stream": event.stream,
            "client_disconnected": event.client_disconnected,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cost": str(event.cost),
        }
    )
    failed = [a for a in event.attempt_log if a.error_code is not None]
    if failed:  # a failover: which credentials failed, how, in order (rare; kept off the rest)
        tries = [[a.credential_id, a.status, a.error_code, a.duration_ms] for a in failed]
        line = line[:-1] + b',"failed_attempts":' + orjson.dumps(tries) + b"}"
    return line.decode()


def refused_before_auth(request_id: str, path: str, error: GatewayError) -> None:
    """A request refused before its key was known: a metric and a line with its outcome only."""
    code = error.code or "unknown"
    REQUESTS_REFUSED_BEFORE_AUTH.labels(code).inc()
    if ACCESS_LOG.isEnabledFor(_INFO):
        ACCESS_LOG.info(
            orjson.dumps(
                {
                    "time": round(time.time(), 3),
                    "request_id": request_id,
                    "path": path,
                    "status": int(error.status),
                    "error_code": code,
                }
            ).decode()
        )


__all__ = ["ACCESS_LOG", "UNKNOWN", "access_line", "observe", "observed", "refused_before_auth"]
