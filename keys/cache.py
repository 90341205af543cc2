"""What the gateway caches about a key, and how a change to a key reaches every gateway process.

An entry is a JSON-able dict keyed by the SHA-256 of the secret: either a policy (everything
the gateway enforces) or a refusal (the 401 message for a revoked, disabled or unknown key).
Writers (the services, through signals) store the fresh entry in Redis and then announce the
hashes: on a Redis channel for other processes, and through `key_changed` for a gateway in this
process (embedded mode, tests). Without Redis, other processes (the CLI beside `make run`, a
second server) learn of them from the KeyChange rows written here, which gateways poll.
Gateways drop their local copies on the announcement and refill from Redis, or from the
database on a miss.
"""

import logging
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import orjson
import redis
from django.conf import settings
from django.db import Error as DatabaseError
from django.db.models import Max
from django.dispatch import Signal
from django.utils import timezone

from keys.models import ApiKey, KeyChange
from tokenbyte.redis import sync_client

logger = logging.getLogger(__name__)

# Sent with `hashes` (a list of hex digests) after a change is committed.
key_changed = Signal()

# Writers refresh an entry on every change; the TTL only bounds how long a missed write
# (Redis down during a revoke) can be served, and frees keys nobody uses.
REDIS_TTL_SECONDS = 300
# Unknown hashes (written by gateways only if absent). A mint overwrites its hash at once.
REDIS_NEGATIVE_TTL_SECONDS = 60
# A writer (console, CLI) waits at most this long for Redis, once: a stalled Redis must not
# hold a revoke for redis-py's default ten retries.
ANNOUNCE_TIMEOUT_SECONDS = 2.0

# Without Redis: how long KeyChange rows are kept. A gateway that could not poll for longer
# drops every cached key instead (proxy/gateway/auth/key_cache.py).
KEY_CHANGE_RETENTION = timedelta(minutes=10)
# This process, as the origin of the KeyChange rows it writes (fixed for its lifetime).
PROCESS_ORIGIN = uuid.uuid4().hex

UNKNOWN_KEY_MESSAGE = (
    "Incorrect API key provided. Check that it was copied whole, or create a new key in the "
    "console under /keys/."
)


def policy_redis_key(secret_hash: str) -> str:
    return f"tb:keys:entry:{secret_hash}"


def changes_channel(db: int) -> str:
    # Pub/sub is shared by every database of a Redis server; the db number keeps deployments
    # (and test runs) that share a server apart.
    return f"tb:keys:changed:{db}"


def redis_db(client: Any) -> int:
    return int(client.connection_pool.connection_kwargs.get("db", 0) or 0)


def key_cache_entry(key: ApiKey) -> dict[str, Any]:
    """The entry for one key (its owner must be loaded)."""
    if key.revoked_at is not None:
        when = key.revoked_at.strftime("%Y-%m-%d %H:%M UTC")
        return {"refused": f"This API key was revoked on {when}. Create a new key under /keys/."}
    if not key.owner.is_active:
        return {"refused": "The account that owns this API key is disabled."}
    return {
        "id": key.pk,
        "account": key.owner_id,
        "name": key.name,
        "prefix": key.prefix,
        "rpm": key.rpm,
        "tpm": key.tpm,
        "models": list(key.allowed_models),
        "max_request_cost": _decimal_text(key.max_request_cost),
        "budget": _decimal_text(key.budget),
        "budget_period": key.budget_period,
        "expires_at": key.expires_at.timestamp() if key.expires_at else None,
        "networks": list(key.allowed_networks),
        "log_bodies": key.owner.log_bodies,
    }


def key_cache_lookup(secret_hash: str) -> dict[str, Any]:
    """The entry for a hash, from the database (the gateway's miss path; one query)."""
    key = ApiKey.objects.select_related("owner").filter(secret_hash=secret_hash).first()
    if key is None:
        return {"refused": UNKNOWN_KEY_MESSAGE, "unknown": True}
    return key_cache_entry(key)


def key_cache_refresh(*, key_ids: Iterable[int] = (), deleted_hashes: Iterable[str] = ()) -> None:
    """Publish the current state of these keys to every gateway (call after commit)."""
    entries = {
        key.secret_hash: orjson.dumps(key_cache_entry(key))
        for key in ApiKey.objects.select_related("owner").filter(pk__in=list(key_ids))
    }
    _announce(entries, list(deleted_hashes))


def _announce(entries: dict[str, bytes], deleted: list[str]) -> None:
    hashes = [*entries, *deleted]
    if not hashes:
        return
    if settings.REDIS_URL:
        # Redis first: a gateway that drops its copy on the announcement must find the new one.
        try:
            with sync_client(settings.REDIS_URL, timeout=ANNOUNCE_TIMEOUT_SECONDS) as client:
                pipe = client.pipeline(transaction=False)
                for secret_hash, entry in entries.items():
                    pipe.set(policy_redis_key(secret_hash), entry, ex=REDIS_TTL_SECONDS)
                for secret_hash in deleted:
                    pipe.delete(policy_redis_key(secret_hash))
                pipe.publish(changes_channel(redis_db(client)), " ".join(hashes))
                pipe.execute()
        except redis.RedisError:
            logger.error(
                "could not announce a change to %d API key(s) through Redis; other gateway "
                "processes keep their copy for up to %d s",
                len(hashes),
                REDIS_TTL_SECONDS,
                exc_info=True,
            )
    else:
        try:
            _record_changes(hashes)
        except DatabaseError:
            logger.error(
                "could not record a change to %d API key(s) for other processes; their "
                "gateways keep their copy until it expires",
                len(hashes),
                exc_info=True,
            )
    key_changed.send(sender=ApiKey, hashes=hashes)


def _record_changes(hashes: list[str]) -> None:
    now = timezone.now()
    KeyChange.objects.bulk_create(
        KeyChange(secret_hash=secret_hash, origin=PROCESS_ORIGIN, created_at=now)
        for secret_hash in hashes
    )
    KeyChange.objects.filter(created_at__lt=now - KEY_CHANGE_RETENTION).delete()


def key_changes_latest() -> int:
    """The newest KeyChange id: where a gateway starts following them."""
    return KeyChange.objects.aggregate(latest=Max("pk"))["latest"] or 0


def key_changes_after(last_id: int) -> tuple[int, list[str]]:
    """(the newest id, the hashes that other processes changed after `last_id`)."""
    rows = list(
        KeyChange.objects.filter(pk__gt=last_id)
        .order_by("pk")
        .values_list("pk", "secret_hash", "origin")
    )
    if not rows:
        return last_id, []
    return rows[-1][0], [secret_hash for _, secret_hash, origin in rows if origin != PROCESS_ORIGIN]


def _decimal_text(value: Any) -> str | None:
    return None if value is None else format(value, "f")
