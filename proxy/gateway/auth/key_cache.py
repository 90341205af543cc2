"""The gateway's key cache: memory → Redis → database, with invalidation and last-used batching.

- Memory: digest → (policy or refusal message, fresh until, usable until). Bounded; unknown
  digests live in a separate, smaller table so a flood of made-up keys cannot push real keys
  out. An entry past its freshness is still served while a background load refreshes it, so
  no request waits for a refresh (and none waits on a database that stopped answering).
- Redis (when configured): the entry writers stored (keys/cache.py, reached through the
  KeyStore the runtime hands in: proxy/gateway/stores.py); gateways fill it on a miss
  only where it is absent, so a slow miss can never overwrite a newer write.
- Database: one query on a miss, on threads of their own (a bounded lane: past its backlog an
  uncached key gets 503 at once); concurrent misses for one digest share it.

Redis calls go through tokenbyte/redis.py's breaker: a Redis that is slow or gone is skipped
(memory, then the database) instead of being waited for. Each client address may have only so
many unknown keys looked up a minute (proxy/gateway/limits.py UnknownKeyLimiter): past that its
uncached keys get 429 without touching Redis or the database.

Invalidation: writers announce changed digests on a Redis channel (a listener task here drops
them from memory) and through an in-process signal. Without Redis, a task here reads the
KeyChange rows that other processes wrote (keys/cache.py) every KEY_CHANGES_POLL_SECONDS on a
connection of its own. A (re)subscription clears memory, since announcements may have been
missed while disconnected (as does a poll after a gap longer than the rows are kept); a miss
that raced an announcement is not kept (generation check). The memory TTL bounds what a lost
announcement can cost. While the database is down, known entries stay usable for up to an hour
(a refresh is retried every few seconds); an unknown digest gets 503.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from django.conf import settings
from django.db import Error as DatabaseError
from redis.exceptions import RedisError

from proxy.gateway.auth.policy import KeyPolicy
from proxy.gateway.db import DatabaseLane, LaneFull, PollingThread, run_in_db_thread
from proxy.gateway.errors import AuthenticationFailed, RateLimited, ServiceUnavailable
from proxy.gateway.limits import ClientAddress, UnknownKeyLimiter
from proxy.gateway.stores import KeyStore
from tokenbyte.metrics import KEY_LOOKUPS_REFUSED
from tokenbyte.redis import GatewayRedis, subscribe_forever

logger = logging.getLogger(__name__)

LOCAL_TTL_SECONDS = 30.0
LOCAL_NEGATIVE_TTL_SECONDS = 10.0
# A known entry stays usable this long after it was loaded while refreshes fail...
STALE_IF_ERROR_SECONDS = 3600.0
# ...and a failed refresh is retried after this long.
OUTAGE_RETRY_SECONDS = 5.0
MAX_ENTRIES = 100_000
MAX_UNKNOWN = 10_000
LAST_USED_FLUSH_SECONDS = 60.0
# Without Redis: how often other processes' key changes are read from the database.
KEY_CHANGES_POLL_SECONDS = 0.5
# During an outage every miss would log; one line per this many seconds is enough.
OUTAGE_LOG_INTERVAL_SECONDS = 10.0
DATABASE_DOWN_MESSAGE = (
    "This API key cannot be checked right now: the gateway's database is unreachable. "
    "Retry in a moment."
)
LOOKUPS_BUSY_MESSAGE = (
    "This API key cannot be checked right now: the gateway is busy checking other keys. "
    "Retry in a moment."
)


class KeyResolver:
    def __init__(self, redis: GatewayRedis | None, store: KeyStore) -> None:
        self.redis = redis
        self.store = store
        self._lookups = DatabaseLane(
            "key-lookup",
            threads=settings.TOKENBYTE_KEY_LOOKUP_THREADS,
            backlog=settings.TOKENBYTE_KEY_LOOKUP_BACKLOG,
        )
        self._unknown_keys = UnknownKeyLimiter(settings.TOKENBYTE_UNKNOWN_KEYS_PER_MINUTE)
        # digest -> (KeyPolicy, or the 401 message of a known key such as a revoked one;
        #            fresh until; usable until), in time.monotonic() seconds
        self._entries: dict[str, tuple[KeyPolicy | str, float, float]] = {}
        self._unknown: dict[str, float] = {}  # digest -> fresh until
        self._loading: dict[str, asyncio.Future[KeyPolicy | str]] = {}
        # Bumped by every invalidation: a miss that started before one does not store its result.
        self._generation = 0
        self._used: dict[int, float] = {}  # key id -> epoch seconds of its latest request
        self._tasks: list[asyncio.Task[None]] = []
        self._quiet_until = 0.0  # outage warnings are rate-limited
        self._dispatch_uid = f"key-resolver-{id(self)}"
        self._changes = PollingThread("key-changes") if redis is None else None

    # --- lifecycle (Runtime.start / Runtime.stop) -------------------------------------------

    async def start(self) -> None:
        self.store.changed.connect(
            self._on_key_changed, weak=False, dispatch_uid=self._dispatch_uid
        )
        if self.redis is not None:
            listener = subscribe_forever(
                self.redis.listener,
                self.store.channel(self.redis.db),
                self._on_announcement,
                name="key invalidations",
            )
            self._tasks.append(asyncio.create_task(listener, name="key-invalidations"))
        else:
            self._tasks.append(asyncio.create_task(self._follow_changes(), name="key-changes"))
        self._tasks.append(asyncio.create_task(self._flush_forever(), name="key-last-used"))

    async def stop(self) -> None:
        self.store.changed.disconnect(dispatch_uid=self._dispatch_uid)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._changes is not None:
            await self._changes.close()
        await self.settle()
        try:
            await asyncio.wait_for(self.flush_last_used(), 5.0)
        except TimeoutError:
            logger.warning("could not record the keys' last use before stopping (timeout)")
        await self._lookups.close()

    # --- the hot path -----------------------------------------------------------------------

    def cached(self, digest: str) -> KeyPolicy | None:
        """The policy from memory; None on a miss. A refused key raises AuthenticationFailed."""
        entry = self._entries.get(digest)
        if entry is not None:
            value, fresh_until, usable_until = entry
            if fresh_until <= time.monotonic():
                if usable_until <= time.monotonic():
                    return None
                self._start_load(digest)  # refresh in the background; serve this one meanwhile
            if isinstance(value, str):
                raise AuthenticationFailed(value)
            return value
        unknown_until = self._unknown.get(digest)
        if unknown_until is not None and unknown_until > time.monotonic():
            raise AuthenticationFailed(self.store.unknown_key_message)
        return None

    def mark_used(self, key_id: int) -> None:
        self._used[key_id] = time.time()

    # --- misses -----------------------------------------------------------------------------

    async def load(self, digest: str, client: ClientAddress | None = None) -> KeyPolicy:
        """Resolve a digest memory missed; one load per digest however many requests wait.

        `client` (the request's address) pays for the lookup when no such key exists.
        """
        retry_after = self._unknown_keys.retry_after(client)
        if retry_after is not None:
            KEY_LOOKUPS_REFUSED.labels("unknown_keys").inc()
            raise RateLimited(
                "Too many requests with unknown API keys came from your address; retry in "
                f"{retry_after} s with a valid key (create one in the console under /keys/).",
                headers=[(b"retry-after", str(retry_after).encode())],
            )
        value = await asyncio.shield(self._start_load(digest))
        if isinstance(value, str):
            if digest in self._unknown:  # no such key (a revoked one is known)
                self._unknown_keys.charge(client)
            raise AuthenticationFailed(value)
        return value

    async def settle(self) -> None:
        """Wait for the loads under way (refreshes included)."""
        await asyncio.gather(*self._loading.values(), return_exceptions=True)

    def _start_load(self, digest: str) -> asyncio.Future[KeyPolicy | str]:
        future = self._loading.get(digest)
        if future is None:
            future = asyncio.create_task(self._load(digest), name="key-load")
            self._loading[digest] = future
            future.add_done_callback(lambda done: self._loaded(digest, done))
        return future

    def _loaded(self, digest: str, future: asyncio.Future[KeyPolicy | str]) -> None:
        self._loading.pop(digest, None)
        if not future.cancelled():
            future.exception()  # retrieved: a refresh, or a load all waiters gave up on

    async def _load(self, digest: str) -> KeyPolicy | str:
        generation = self._generation
        entry = await self._redis_entry(digest)
        if entry is None:
            try:
                entry = await self._lookups.run(self.store.lookup, digest)
            except LaneFull:
                KEY_LOOKUPS_REFUSED.labels("busy").inc()
                busy = ServiceUnavailable(LOOKUPS_BUSY_MESSAGE, headers=[(b"retry-after", b"1")])
                return self._stale_or_raise(digest, busy)
            except DatabaseError as exc:
                self._database_down(exc)
                return self._stale_or_raise(digest, ServiceUnavailable(DATABASE_DOWN_MESSAGE), exc)
            await self._redis_fill(digest, entry)
        unknown = bool(entry.get("unknown"))
        value: KeyPolicy | str = (
            entry["refused"] if "refused" in entry else KeyPolicy.from_entry(entry)
        )
        if generation == self._generation:
            self._store(digest, value, unknown=unknown)
        return value

    def _database_down(self, exc: Exception) -> None:
        now = time.monotonic()
        if now >= self._quiet_until:
            self._quiet_until = now + OUTAGE_LOG_INTERVAL_SECONDS
            logger.warning(
                "database unreachable (%s): cached keys keep working, uncached ones get 503", exc
            )

    def _stale_or_raise(
        self, digest: str, error: ServiceUnavailable, cause: Exception | None = None
    ) -> KeyPolicy | str:
        """A known entry's last value while its refresh cannot be done (retried later)."""
        now = time.monotonic()
        entry = self._entries.get(digest)
        if entry is None or entry[2] <= now:
            raise error from cause
        value, _, usable_until = entry
        self._entries[digest] = (value, now + OUTAGE_RETRY_SECONDS, usable_until)
        return value

    async def _redis_entry(self, digest: str) -> dict[str, Any] | None:
        if self.redis is None:
            return None
        key = self.store.redis_key(digest)
        try:
            raw = await self.redis.call("key_lookup", lambda client: client.get(key))
        except RedisError:  # counted and logged by the breaker; the database answers instead
            return None
        if raw is None:
            return None
        try:
            entry: dict[str, Any] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            logger.error("unreadable key cache entry in Redis; using the database")
            return None
        return entry

    async def _redis_fill(self, digest: str, entry: dict[str, Any]) -> None:
        if self.redis is None:
            return
        store = self.store
        ttl = store.redis_negative_ttl_seconds if entry.get("unknown") else store.redis_ttl_seconds
        key, value = store.redis_key(digest), orjson.dumps(entry)
        with contextlib.suppress(RedisError):  # counted by the breaker; memory has it anyway
            await self.redis.call(
                "key_fill", lambda client: client.set(key, value, ex=ttl, nx=True)
            )

    def _store(self, digest: str, value: KeyPolicy | str, *, unknown: bool) -> None:
        now = time.monotonic()
        if unknown:
            _evict_oldest_if_full(self._unknown, MAX_UNKNOWN, digest)
            self._unknown[digest] = now + LOCAL_NEGATIVE_TTL_SECONDS
        else:
            _evict_oldest_if_full(self._entries, MAX_ENTRIES, digest)
            self._entries[digest] = (value, now + LOCAL_TTL_SECONDS, now + STALE_IF_ERROR_SECONDS)
            self._unknown.pop(digest, None)

    # --- invalidation -----------------------------------------------------------------------

    def invalidate(self, digests: Iterable[str]) -> None:
        # Also called from console threads in embedded mode: single dict operations only.
        self._generation += 1
        for digest in digests:
            self._entries.pop(digest, None)
            self._unknown.pop(digest, None)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._unknown.clear()

    def _on_key_changed(self, sender: Any, hashes: list[str], **kwargs: Any) -> None:
        self.invalidate(hashes)

    async def _follow_changes(self) -> None:
        """Without Redis: drop the keys other processes changed, read from the database."""
        assert self._changes is not None  # noqa: S101  # started only without Redis
        last_id: int | None = None
        last_read = time.monotonic()
        while True:
            try:
                if last_id is None:
                    last_id = await self._changes.run(self.store.changes_latest)
                else:
                    last_id, digests = await self._changes.run(self.store.changes_after, last_id)
                    if time.monotonic() - last_read > self.store.change_retention_seconds:
                        self.clear()  # rows we never read may be gone
                    elif digests:
                        self.invalidate(digests)
                last_read = time.monotonic()
            except DatabaseError:
                pass  # the database is down: cached keys keep working (see _load)
            except Exception:  # keep following; the memory TTL bounds what is missed meanwhile
                logger.exception("could not read the key changes of other processes")
            await asyncio.sleep(KEY_CHANGES_POLL_SECONDS)

    def _on_announcement(self, message: dict[str, Any]) -> None:
        if message["type"] == "message":
            self.invalidate(message["data"].decode().split())
        elif message["type"] == "subscribe":
            self.clear()  # (re)subscribed: announcements may have been missed meanwhile

    # --- last used --------------------------------------------------------------------------

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(LAST_USED_FLUSH_SECONDS)
            await self.flush_last_used()

    async def flush_last_used(self) -> None:
        used, self._used = self._used, {}
        if not used:
            return
        moments = {key_id: datetime.fromtimestamp(at, UTC) for key_id, at in used.items()}
        try:
            await run_in_db_thread(self.store.record_last_used, moments)
        except DatabaseError as exc:
            logger.warning("could not record the keys' last use (%s); retrying later", exc)
            for key_id, at in used.items():  # keep them for the next flush
                if self._used.get(key_id, 0.0) < at:
                    self._used[key_id] = at


def _evict_oldest_if_full(table: dict[str, Any], limit: int, incoming: str) -> None:
    if len(table) < limit or incoming in table:
        return
    try:
        del table[next(iter(table))]  # insertion order: the oldest entry
    except (RuntimeError, StopIteration, KeyError):  # changed by an invalidation meanwhile
        table.clear()
