"""The gateway's Prometheus metrics, defined in one place.

Exposing them (/metrics, multiprocess-correct and protected) is issue #15's; this module only
defines what the code increments. Each is process-wide, as the prometheus_client registry is.
"""

from prometheus_client import Counter, Gauge

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
