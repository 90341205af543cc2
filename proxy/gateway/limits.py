"""Per-key requests-per-minute and tokens-per-minute limits, shared by every gateway process.

Both are GCRA (a token bucket kept as one "theoretical arrival time" per key and limit): a key
may spend its whole minute's allowance at once, then at the steady rate. Requests are counted
when admitted. Tokens are known only after a call, so they are counted when its usage event is
shipped, and a key over its tokens-per-minute is refused until enough of its minute has passed.
With REDIS_URL the state lives in Redis and one Lua script decides atomically on Redis's own
clock; in embedded mode (one process) it lives in this process, and so it does while Redis is
unreachable or slow (tokenbyte/redis.py: a short timeout and a breaker): each process then
enforces the limits alone rather than failing or delaying the request.

UnknownKeyLimiter bounds how many unknown keys one client address may have looked up.
"""

import ipaddress
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from redis.exceptions import RedisError

from billing.events import UsageEvent
from proxy.gateway.errors import RateLimited
from tokenbyte.redis import GatewayRedis

WINDOW_MS = 60_000.0
Headers = list[tuple[bytes, bytes]]


class KeyLimits(Protocol):
    """What the limiter reads of a key's policy (auth.policy.KeyPolicy)."""

    @property
    def key_id(self) -> int: ...
    @property
    def rpm(self) -> int | None: ...
    @property
    def tpm(self) -> int | None: ...


# KEYS: requests bucket, tokens bucket. ARGV: rpm (0: none), tpm (0: none), window ms.
# Returns: allowed, requests remaining, requests reset ms, tokens remaining, tokens reset ms,
# retry-after ms.
ADMIT_SCRIPT = """
local t = redis.call('TIME')
local now = t[1] * 1000 + t[2] / 1000
local rpm, tpm, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local allowed, retry = 1, 0
local req_left, req_reset, tok_left, tok_reset = 0, 0, 0, 0
if tpm > 0 then
  local tokens_tat = math.max(tonumber(redis.call('GET', KEYS[2]) or now), now)
  local per, used = window / tpm, tokens_tat - now
  if used >= window then allowed = 0; retry = math.max(retry, used - window + per) end
  tok_left = math.max(0, math.floor((window - used) / per))
  tok_reset = used
end
if rpm > 0 then
  local requests_tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
  local per = window / rpm
  local new_tat = requests_tat + per
  if new_tat - now > window then allowed = 0; retry = math.max(retry, new_tat - now - window) end
  if allowed == 1 then
    redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
    req_left = math.max(0, math.floor((window - (new_tat - now)) / per))
    req_reset = new_tat - now
  else
    req_reset = requests_tat - now
  end
end
return {allowed, req_left, math.ceil(req_reset), tok_left, math.ceil(tok_reset), math.ceil(retry)}
"""

# KEYS: tokens bucket. ARGV: tpm, window ms, tokens.
CONSUME_SCRIPT = """
local t = redis.call('TIME')
local now = t[1] * 1000 + t[2] / 1000
local tpm, window, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now) + tokens * window / tpm
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
return 1
"""


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    requests_left: int
    requests_reset_ms: int
    tokens_left: int
    tokens_reset_ms: int
    retry_ms: int


def duration(ms: float) -> str:
    """OpenAI's way of writing a reset time: "20ms", "1.5s", "6m0s"."""
    if ms < 1000:
        return f"{max(0, math.ceil(ms))}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest}s"


def limit_headers(policy: KeyLimits, verdict: Verdict) -> Headers:
    headers: Headers = []
    if policy.rpm:
        headers += [
            (b"x-ratelimit-limit-requests", str(policy.rpm).encode()),
            (b"x-ratelimit-remaining-requests", str(verdict.requests_left).encode()),
            (b"x-ratelimit-reset-requests", duration(verdict.requests_reset_ms).encode()),
        ]
    if policy.tpm:
        headers += [
            (b"x-ratelimit-limit-tokens", str(policy.tpm).encode()),
            (b"x-ratelimit-remaining-tokens", str(verdict.tokens_left).encode()),
            (b"x-ratelimit-reset-tokens", duration(verdict.tokens_reset_ms).encode()),
        ]
    return headers


def _tokens(event: UsageEvent) -> int:
    return event.usage.prompt_tokens + event.usage.completion_tokens


class LocalBuckets:
    """The same arithmetic as the Lua scripts, for one process (embedded mode)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}

    def _now(self) -> float:
        return self._clock() * 1000

    def admit(self, requests_key: str, tokens_key: str, rpm: int, tpm: int) -> Verdict:
        now = self._now()
        allowed, retry = True, 0.0
        tokens_left = 0
        tokens_reset = 0.0
        if tpm:
            used = max(self._tat.get(tokens_key, now), now) - now
            per = WINDOW_MS / tpm
            if used >= WINDOW_MS:
                allowed, retry = False, max(retry, used - WINDOW_MS + per)
            tokens_left, tokens_reset = max(0, math.floor((WINDOW_MS - used) / per)), used
        requests_left = 0
        requests_reset = 0.0
        if rpm:
            tat = max(self._tat.get(requests_key, now), now)
            per = WINDOW_MS / rpm
            new_tat = tat + per
            if new_tat - now > WINDOW_MS:
                allowed, retry = False, max(retry, new_tat - now - WINDOW_MS)
            if allowed:
                self._tat[requests_key] = new_tat
                requests_left = max(0, math.floor((WINDOW_MS - (new_tat - now)) / per))
                requests_reset = new_tat - now
            else:
                requests_reset = tat - now
        self._forget_old(now)
        return Verdict(
            allowed,
            requests_left,
            math.ceil(requests_reset),
            tokens_left,
            math.ceil(tokens_reset),
            math.ceil(retry),
        )

    def consume(self, tokens_key: str, tpm: int, tokens: int) -> None:
        now = self._now()
        self._tat[tokens_key] = max(self._tat.get(tokens_key, now), now) + tokens * WINDOW_MS / tpm

    def _forget_old(self, now: float) -> None:
        if len(self._tat) > 10_000:  # buckets in the past hold no state: drop them
            for key in [key for key, tat in self._tat.items() if tat < now]:
                del self._tat[key]


class RateLimiter:
    def __init__(self, redis: GatewayRedis | None) -> None:
        self._redis = redis
        self._local = LocalBuckets()
        self._tpm: dict[int, int] = {}  # key id -> its tokens-per-minute, for consumption
        # Registered on the hot client; the breaker logs when Redis stops and starts answering.
        self._admit: Any = redis.hot.register_script(ADMIT_SCRIPT) if redis is not None else None
        self._consume: Any = (
            redis.hot.register_script(CONSUME_SCRIPT) if redis is not None else None
        )

    async def admit(self, policy: KeyLimits) -> Headers:
        """The rate-limit headers for the response; RateLimited (429) when over a limit."""
        rpm, tpm = policy.rpm or 0, policy.tpm or 0
        if not rpm and not tpm:
            return []
        if tpm:
            self._tpm[policy.key_id] = tpm
        requests_key, tokens_key = _bucket_keys(policy.key_id)
        verdict: Verdict | None = None
        if self._redis is not None:
            try:
                raw = await self._redis.call(
                    "rate_limit",
                    lambda client: self._admit(
                        keys=[requests_key, tokens_key], args=[rpm, tpm, WINDOW_MS], client=client
                    ),
                )
                verdict = Verdict(bool(raw[0]), *(int(value) for value in raw[1:]))
            except RedisError:
                pass  # counted and logged by the breaker; this process decides alone
        if verdict is None:
            verdict = self._local.admit(requests_key, tokens_key, rpm, tpm)
        headers = limit_headers(policy, verdict)
        if not verdict.allowed:
            seconds = max(1, math.ceil(verdict.retry_ms / 1000))
            over = (
                f"{rpm} requests per minute"
                if rpm and verdict.requests_left == 0 and (not tpm or verdict.tokens_left > 0)
                else f"{tpm} tokens per minute"
            )
            raise RateLimited(
                f"This API key's limit of {over} is reached; retry in {seconds} s.",
                headers=[(b"retry-after", str(seconds).encode()), *headers],
            )
        return headers

    async def on_usage(self, batch: list[UsageEvent]) -> None:
        """Metering consumer: count each limited key's tokens once its call is over."""
        spent = [
            (event.key_id, self._tpm[event.key_id], _tokens(event))
            for event in batch
            if event.key_id is not None and event.key_id in self._tpm and _tokens(event) > 0
        ]
        if not spent:
            return
        if self._redis is not None:

            async def consume(client: Any) -> None:
                async with client.pipeline(transaction=False) as pipe:
                    for key_id, tpm, tokens in spent:
                        await self._consume(
                            keys=[_bucket_keys(key_id)[1]],
                            args=[tpm, WINDOW_MS, tokens],
                            client=pipe,
                        )
                    await pipe.execute()

            try:
                await self._redis.call("token_count", consume)
                return
            except RedisError:
                pass  # counted where admissions are decided meanwhile: in this process
        for key_id, tpm, tokens in spent:
            self._local.consume(_bucket_keys(key_id)[1], tpm, tokens)


# The table of client addresses is capped (an attacker has many); past the cap, idle entries
# go first (at most one sweep a second), then the oldest.
MAX_CLIENT_ADDRESSES = 10_000
SWEEP_SECONDS = 1.0
ClientAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnknownKeyLimiter:
    """Unknown keys looked up per client address and minute, in this process only.

    A made-up key costs a Redis call and a query, so a client may send only so many of them:
    past that its uncached keys get 429 without touching either (its cached keys keep
    working). GCRA, like the keys' own limits: the minute's allowance at once, then the steady
    rate. An IPv6 client counts per /64, which a single host usually holds whole.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        max_clients: int = MAX_CLIENT_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = WINDOW_MS / 1000 / per_minute if per_minute > 0 else 0.0
        self._max_clients = max_clients
        self._clock = clock
        self._tat: dict[str, float] = {}  # client -> theoretical arrival time, clock seconds
        self._next_sweep = 0.0

    def retry_after(self, address: ClientAddress | None) -> int | None:
        """Seconds until this client may have another key looked up; None: it may now."""
        if not self._interval:
            return None
        tat = self._tat.get(_client_key(address))
        if tat is None:
            return None
        wait = tat + self._interval - self._clock() - WINDOW_MS / 1000
        return max(1, math.ceil(wait)) if wait > 0 else None

    def charge(self, address: ClientAddress | None) -> None:
        """One lookup of this client's found no key."""
        if not self._interval:
            return
        client, now = _client_key(address), self._clock()
        tat = max(self._tat.pop(client, now), now) + self._interval  # re-inserted: newest last
        # Lookups charged after the fact (concurrent ones) never make a client wait longer
        # than one interval.
        self._tat[client] = min(tat, now + WINDOW_MS / 1000)
        if len(self._tat) > self._max_clients:
            self._shrink(now)

    def _shrink(self, now: float) -> None:
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_SECONDS
            for client in [client for client, tat in self._tat.items() if tat <= now]:
                del self._tat[client]
        while len(self._tat) > self._max_clients:
            del self._tat[next(iter(self._tat))]


def _client_key(address: ClientAddress | None) -> str:
    if address is None:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _bucket_keys(key_id: int) -> tuple[str, str]:
    # One hash tag per key: both buckets land on one node of a Redis Cluster.
    return f"tb:rl:{{{key_id}}}:requests", f"tb:rl:{{{key_id}}}:tokens"
