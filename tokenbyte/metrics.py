"""The gateway's Prometheus metrics, defined in one place, and their exposition.

Each is process-wide, as the prometheus_client registry is. Under `manage.py serve` every
process (web workers, Celery) writes its values to files in PROMETHEUS_MULTIPROC_DIR, a fresh
directory per run, set before any of them imports prometheus_client; `exposition()` then merges
every process's files, so a scrape answered by any one worker counts them all. Without that
variable (a single process, the tests' LiveServer) it reads this process's registry.

The per-request series are observed once per usage event (proxy/gateway/observe.py); their
labels are bounded: endpoint, the card's title (or "unknown" when no card was found, whatever
the client named), provider, the status code, the credential's id.
"""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.registry import Collector

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# Hot-path Redis (tokenbyte/redis.py). `operation` is one of the names the callers pass:
# key_lookup, key_fill, rate_limit, token_count, cooldown_share.
REDIS_BREAKER_STATE = Gauge(
    "tokenbyte_redis_breaker_state",
    "The hot-path Redis breaker: 0 closed (calls go to Redis), 1 open (skipped), 2 half-open "
    "(one probe call decides).",
    multiprocess_mode="liveall",
)
REDIS_BREAKER_OPENINGS = Counter(
    "tokenbyte_redis_breaker_openings",
    "Times the hot-path Redis breaker opened after consecutive failures or timeouts.",
)
REDIS_TIMEOUTS = Counter(
    "tokenbyte_redis_timeouts",
    "Hot-path Redis calls that got no answer within TOKENBYTE_REDIS_TIMEOUT.",
    ["operation"],
)
REDIS_FALLBACKS = Counter(
    "tokenbyte_redis_fallbacks",
    "Hot-path Redis calls answered by the documented fallback instead (Redis failed, timed "
    "out, or the open breaker skipped it).",
    ["operation"],
)

# Key-cache misses (proxy/gateway/auth/key_cache.py): `reason` is `busy` (every lookup thread
# taken and the backlog full: 503) or `unknown_keys` (the client address sent too many unknown
# keys: 429).
KEY_LOOKUPS_REFUSED = Counter(
    "tokenbyte_key_lookups_refused",
    "Key-cache misses answered without looking the key up.",
    ["reason"],
)

# Requests refused before their key was known (missing, malformed, unknown, expired or
# revoked keys, a key from a refused address): counted here, never as usage events, which
# belong to an account. `code` is the error code the client got.
REQUESTS_REFUSED_BEFORE_AUTH = Counter(
    "tokenbyte_requests_refused_before_auth",
    "API requests refused before authentication succeeded.",
    ["code"],
)

# Answers whose usage event had not reached Redis when their last bytes were due (the wait is
# bounded: proxy/gateway/pipeline/metering.py DURABLE_WAIT_SECONDS); the event is retried.
USAGE_NOT_DURABLE = Counter(
    "tokenbyte_usage_not_durable",
    "Answers finished before their usage event was durable in Redis.",
)

# --- per request, from its usage event (proxy/gateway/observe.py) ------------------------------
REQUESTS = Counter(
    "tokenbyte_requests",
    "API requests that passed authentication, by how they ended (one per usage event).",
    ["endpoint", "model", "provider", "status"],
)
REQUEST_DURATION = Histogram(
    "tokenbyte_request_duration_seconds",
    "Time from a request's arrival to its last byte (or its end), in seconds.",
    ["endpoint", "model", "provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120),
)
TIME_TO_FIRST_BYTE = Histogram(
    "tokenbyte_time_to_first_byte_seconds",
    "Streams: time from a request's arrival to the first byte sent to the client, in seconds.",
    ["model", "provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120),
)
TOKENS = Counter(
    "tokenbyte_tokens",
    "Tokens metered: `in` the prompt (cached included), `out` the completion (reasoning included).",
    ["model", "provider", "direction"],
)
UPSTREAM_ATTEMPTS = Counter(
    "tokenbyte_upstream_attempts",
    "Upstream attempts: `final` the one each request ended with, `retry` those before it "
    "(failover to another credential, or a retry).",
    ["provider", "outcome"],
)
UPSTREAM_ERRORS = Counter(
    "tokenbyte_upstream_errors",
    "Upstream tries that failed (then failed over, or ended the request), by credential id and "
    "the gateway's reason (upstream_error, upstream_timeout, upstream_rate_limited, ...).",
    ["provider", "credential", "reason"],
)
REFUSALS = Counter(
    "tokenbyte_refusals",
    "Authenticated requests refused by a limit: `reason` is the error code (429 "
    "rate_limit_exceeded; 402 insufficient_balance, budget_exhausted, request_cost_cap...).",
    ["reason"],
)

# Usage events a process has not made durable yet (queued, waiting for Redis, or for its own
# database recorder): the metering lag. Set every second by the runtime (proxy/gateway/
# runtime.py); summed over the live processes.
METERING_BACKLOG = Gauge(
    "tokenbyte_metering_backlog",
    "Usage events not yet durable (in Redis or the database).",
    multiprocess_mode="livesum",
)


# Calls holding a reservation in a process (its purse's holds), set with the backlog above.
RESERVATIONS_IN_FLIGHT = Gauge(
    "tokenbyte_reservations_in_flight",
    "Calls holding a reservation of their worst case, not yet settled or released.",
    multiprocess_mode="livesum",
)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or None


def exposition(*extra: Collector) -> tuple[bytes, str]:
    """The metrics in Prometheus's text format, and its content type (file reads: off-loop);
    `extra` collectors are read at this scrape (their families follow the others')."""
    if multiprocess_dir() is None:
        text = generate_latest(REGISTRY)
    else:
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        text = generate_latest(registry)
    if extra:
        scraped = CollectorRegistry(auto_describe=False)
        for collector in extra:
            scraped.register(collector)
        text += generate_latest(scraped)
    return text, CONTENT_TYPE_LATEST


def process_exiting() -> None:
    """A process stops: drop its live gauges' files (its counters stay in the sums)."""
    if multiprocess_dir() is not None:
        _multiprocess.mark_process_dead(os.getpid())
