"""What operators see of each API request: its metrics and one access-log line.

Every usage event is handed to an `Observer` on its way to metering (the one emission point:
the pipeline's sink, proxy/gateway/runtime.py), which `observe`s them in batches, so each
authenticated request is seen exactly once, whichever way it ended; `refused_before_auth` does
the same for requests refused before their key was known (no event: no account). The access
log is the logger `tokenbyte.access`, one JSON object per line (a record per batch, its lines
joined by newlines); the lines are built only when that logger is enabled for INFO
(TOKENBYTE_ACCESS_LOG, tokenbyte/settings.py). They carry identifiers, the outcome and the
counts, never a key, a body or an upstream credential.

Label values are bounded: a request no card was found for is counted under the model
"unknown", whatever it named.
"""

import asyncio
import bisect
import collections
import logging
import time
from collections.abc import Callable, Sequence
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
# How long a usage event may wait to be observed: a batch's counts and lines go out together.
FLUSH_SECONDS = 0.05
logger = logging.getLogger(__name__)

Sink = Callable[[UsageEvent], "asyncio.Future[bool] | None"]

# Label children by their metric and values, created once (`_child`). The values are bounded
# (see above), so this stays small.
_children: dict[tuple[Any, tuple[str, ...]], Any] = {}


def observed(sink: Sink, observer: "Observer", spans: "Spans | None" = None) -> Sink:
    """`sink` (metering), each event then handed to `observer`, and traced when tracing is on
    (`spans`: proxy/gateway/tracing.py)."""

    def emit(event: UsageEvent) -> "asyncio.Future[bool] | None":
        durable = sink(event)  # first: no failure here may cost the charge
        observer.add(event)
        if spans is not None:
            try:
                spans.export(event)
            except Exception:
                logger.exception("request %s: tracing its usage event failed", event.request_id)
        return durable

    return emit


class Observer:
    """Observes usage events in batches, each at most `flush_seconds` after its first event.

    Per request, the metrics were eight locked writes to memory-mapped files (multiprocess
    mode) and the access log a `logging` record with its write: about a third of a request's
    CPU on the gateway's own work (bench/README.md). Batched, each series is written once per
    batch with the batch's sum, and the batch's lines go out as one record. What is lost to a
    SIGKILL is at most one batch of lines and counts; `flush` (the runtime's stop) loses none.
    """

    def __init__(self, flush_seconds: float = FLUSH_SECONDS) -> None:
        self._flush_seconds = flush_seconds
        self._pending: list[UsageEvent] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(self, event: UsageEvent) -> None:
        self._pending.append(event)
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a script, a test): nothing would flush later
            self.flush()
            return
        self._timer = loop.call_later(self._flush_seconds, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            observe(batch)
        except Exception:
            logger.exception("observing %d usage events failed", len(batch))


def observe(events: Sequence[UsageEvent]) -> None:
    """Count the requests the events tell of, and write their access-log lines."""
    requests: collections.Counter[tuple[str, ...]] = collections.Counter()
    durations: dict[tuple[str, ...], list[float]] = collections.defaultdict(list)
    ttfbs: dict[tuple[str, ...], list[float]] = collections.defaultdict(list)
    tokens: collections.Counter[tuple[str, ...]] = collections.Counter()
    attempts: collections.Counter[tuple[str, ...]] = collections.Counter()
    errors: collections.Counter[tuple[str, ...]] = collections.Counter()
    refusals: collections.Counter[tuple[str, ...]] = collections.Counter()
    lines: list[str] | None = [] if ACCESS_LOG.isEnabledFor(_INFO) else None
    for event in events:
        provider = event.provider
        if provider is None:  # no card was found: whatever the client named stays out of labels
            model = provider = UNKNOWN
        else:
            model = event.model
        endpoint, status = event.endpoint, event.status
        requests[endpoint, model, provider, str(status)] += 1
        durations[endpoint, model, provider].append(event.latency_ms / 1000)
        if event.stream and event.ttfb_ms is not None:
            ttfbs[model, provider].append(event.ttfb_ms / 1000)
        usage = event.usage
        tokens_in, tokens_out = usage.prompt_tokens, usage.completion_tokens
        if tokens_in:
            tokens[model, provider, "in"] += tokens_in
        if tokens_out:
            tokens[model, provider, "out"] += tokens_out
        if event.attempts:
            attempts[provider, "final"] += 1
            if event.attempts > 1:
                attempts[provider, "retry"] += event.attempts - 1
            for attempt in event.attempt_log:
                if attempt.error_code is not None:
                    errors[provider, str(attempt.credential_id), attempt.error_code] += 1
        if status in REFUSAL_STATUSES:
            refusals[(event.error_code or str(status),)] += 1
        if lines is not None:
            lines.append(access_line(event, tokens_in, tokens_out))
    for metric, counts in (
        (REQUESTS, requests),
        (TOKENS, tokens),
        (UPSTREAM_ATTEMPTS, attempts),
        (UPSTREAM_ERRORS, errors),
        (REFUSALS, refusals),
    ):
        for labels, count in counts.items():
            _child(metric, labels).inc(count)
    for histogram, amounts in ((REQUEST_DURATION, durations), (TIME_TO_FIRST_BYTE, ttfbs)):
        for labels, seconds in amounts.items():
            observe_all(_child(histogram, labels), seconds)
    if lines:  # one record, one line per request
        ACCESS_LOG.info("\n".join(lines))


def _child(metric: Any, labels: tuple[str, ...]) -> Any:
    """`metric.labels(*labels)`, kept: `.labels()` checks and locks on every call."""
    child = _children.get((metric, labels))
    if child is None:
        child = _children[metric, labels] = metric.labels(*labels)
    return child


def observe_all(histogram: Any, amounts: Sequence[float]) -> None:
    """`histogram.observe(a)` for each of `amounts`, each bucket and the sum written once.

    A child's buckets hold per-bucket (not cumulative) counts, the last bound +Inf
    (prometheus_client, pinned in pyproject.toml); tests/proxy/test_metrics.py checks the
    exposition against one `observe` per amount."""
    counts = collections.Counter(bisect.bisect_left(histogram._upper_bounds, a) for a in amounts)
    histogram._sum.inc(sum(amounts))
    buckets = histogram._buckets
    for index, count in counts.items():
        buckets[index].inc(count)


def access_line(event: UsageEvent, tokens_in: int, tokens_out: int) -> str:
    """The event as one JSON line: what happened, never what was said."""
    line = orjson.dumps(
        {
            "time": round(event.started_at + event.latency_ms / 1000, 3),  # its end
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


__all__ = [
    "ACCESS_LOG",
    "UNKNOWN",
    "Observer",
    "access_line",
    "observe",
    "observe_all",
    "observed",
    "refused_before_auth",
]
