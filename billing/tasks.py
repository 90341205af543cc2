"""The Celery side of metering: billing's consumer group drains the gateway's usage stream.

Celery's own Redis transport uses lists, not streams, so the consumer is a short periodic task
(beat, every TOKENBYTE_USAGE_DRAIN_SECONDS): each run first claims what a dead consumer left
pending (XAUTOCLAIM past CLAIM_IDLE_MS), then reads new entries (XREADGROUP) batch by batch
for at most DRAIN_BUDGET_SECONDS, records each batch in one transaction
(billing.services.usage_events_record, idempotent on the event id) and acknowledges it (XACK)
only once that transaction committed; last, it trims the stream below what the group has
acknowledged. A worker killed mid-batch leaves its entries pending: the next run claims them
after CLAIM_IDLE_MS, and events recorded before the kill are skipped, so each is recorded once.
Each worker process reads as a consumer of its own (host-pid); one left with nothing pending
(a dead worker's, once its entries were claimed) is removed from the group.

An event the database refuses for its data (a value out of range: DataError, IntegrityError)
must not hold back every charge behind it: the batch is halved until the events refused alone
are found, and those go to the dead letters, whole, for an operator; the others are recorded.
Any other failure (the database away) leaves the batch pending, for the next run.
"""

import logging
import os
import socket
import time
from typing import Any

import orjson
from celery import shared_task
from django.conf import settings
from django.db import DataError, IntegrityError
from django.utils import timezone
from redis import Redis
from redis.exceptions import ResponseError

from billing.body_log import bodies_drain
from billing.events import UsageEvent
from billing.reservations import push_recorded
from billing.retention import stored_responses_prune, usage_bodies_prune, usage_records_prune
from billing.services import usage_events_record
from tokenbyte.redis import BODIES_GROUP, BODIES_STREAM, USAGE_GROUP, USAGE_STREAM, sync_client

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
CLAIM_IDLE_MS = 60_000  # a live consumer finishes a batch well within this
DRAIN_BUDGET_SECONDS = 5  # whole seconds: nothing in billing/ is a float
DEAD_LETTERS = f"{USAGE_STREAM}:unreadable"
# Refusals of the data, not of the database: the events, not the moment, are at fault.
REFUSED_DATA = (DataError, IntegrityError, OverflowError)
REDIS_TIMEOUT_SECONDS = 10

Entry = tuple[bytes, dict[bytes, bytes]]

# KEYS: the stream. ARGV: the group, the calling consumer. Removes the other consumers that
# hold nothing pending; atomic, so none is removed with entries in its pending list (they would
# never be delivered again), and a live one is created again by its next XREADGROUP.
FORGET_EMPTY_CONSUMERS = """
local gone = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['pending'] == 0 and f['name'] ~= ARGV[2] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    gone = gone + 1
  end
end
return gone
"""


@shared_task(name="billing.usage_drain", ignore_result=True)
def usage_drain() -> int:
    """Record what the gateway's usage stream holds (one periodic run); returns the count."""
    if not settings.REDIS_URL:
        return 0  # embedded mode records in-process
    with sync_client(settings.REDIS_URL, timeout=REDIS_TIMEOUT_SECONDS) as client:
        return drain(client, consumer=f"{socket.gethostname()}-{os.getpid()}")


def drain(client: Redis, *, consumer: str, budget: int = DRAIN_BUDGET_SECONDS) -> int:
    ensure_group(client)
    recorded = _claim_stale(client, consumer)
    _forget_empty_consumers(client, consumer)
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        reply: Any = client.xreadgroup(USAGE_GROUP, consumer, {USAGE_STREAM: ">"}, count=BATCH_SIZE)
        if not reply or not reply[0][1]:
            break
        recorded += _record(client, reply[0][1])
    _trim(client)
    return recorded


def ensure_group(client: Redis) -> None:
    """The consumer group, reading from the stream's start (created with it when missing)."""
    try:
        client.xgroup_create(USAGE_STREAM, USAGE_GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _claim_stale(client: Redis, consumer: str) -> int:
    recorded, start = 0, "0-0"
    while True:
        reply: Any = client.xautoclaim(
            USAGE_STREAM, USAGE_GROUP, consumer, CLAIM_IDLE_MS, start_id=start, count=BATCH_SIZE
        )
        start, entries = reply[0], reply[1]
        if entries:
            logger.warning("claimed %d usage events a stopped consumer left", len(entries))
            recorded += _record(client, entries)
        if start in (b"0-0", "0-0"):
            return recorded


def _forget_empty_consumers(client: Redis, consumer: str) -> None:
    # Without this every restart (a new pid) left a consumer in the group for good.
    forget: Any = client.register_script(FORGET_EMPTY_CONSUMERS)
    forget(keys=[USAGE_STREAM], args=[USAGE_GROUP, consumer])


def _record(client: Redis, entries: list[Entry]) -> int:
    events: list[UsageEvent] = []
    unreadable: list[Entry] = []
    for entry in entries:
        try:
            events.append(UsageEvent.from_json(entry[1][b"event"]))
        except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
            unreadable.append(entry)
    recorded = 0
    if events:
        try:
            batch = usage_events_record(events=events)  # committed before the holds go
        except REFUSED_DATA as exc:
            if len(entries) == 1:
                _set_aside(client, entries, f"{type(exc).__name__}: {exc}")
                return 0
            middle = len(entries) // 2
            return _record(client, entries[:middle]) + _record(client, entries[middle:])
        recorded = batch.recorded
        push_recorded(
            client,
            event_ids=batch.event_ids,
            balances=batch.balances,
            spends={
                (batch.accounts_of_keys[key_id], key_id, window): (
                    amount,
                    batch.balances[batch.accounts_of_keys[key_id]].version,
                )
                for (key_id, window), amount in batch.spends.items()
            },
        )
    if unreadable:
        _set_aside(client, unreadable, "unreadable", acknowledge=False)
    client.xack(USAGE_STREAM, USAGE_GROUP, *[entry_id for entry_id, _ in entries])
    return recorded


def _set_aside(
    client: Redis, entries: list[Entry], reason: str, *, acknowledge: bool = True
) -> None:
    """Kept, not dropped: an operator can read (and replay) them; never billed by a guess."""
    logger.error(
        "%d usage events moved to %s (%s): %s",
        len(entries),
        DEAD_LETTERS,
        reason,
        " ".join(fields.get(b"event", b"").decode(errors="replace") for _, fields in entries),
    )
    with client.pipeline(transaction=False) as pipe:
        for entry_id, fields in entries:
            kept: dict[Any, Any] = {**fields, b"id": entry_id, b"reason": reason}
            pipe.xadd(DEAD_LETTERS, kept)
        if acknowledge:
            pipe.xack(USAGE_STREAM, USAGE_GROUP, *[entry_id for entry_id, _ in entries])
        pipe.execute()


def _trim(client: Redis) -> None:
    """Drop the entries every group has acknowledged: below the oldest one still pending, or
    up to the last delivered when none is."""
    floor: tuple[int, int] | None = None
    groups: Any = client.xinfo_groups(USAGE_STREAM)
    for group in groups:
        pending: Any = client.xpending(USAGE_STREAM, group["name"])
        mark = pending["min"] if pending["pending"] else group["last-delivered-id"]
        if isinstance(mark, bytes):
            mark = mark.decode()
        if not pending["pending"]:
            mark = _next_id(mark)  # the last delivered one is acknowledged: it may go too
        point = _parse_id(mark)
        floor = point if floor is None or point < floor else floor
    if floor is not None:
        client.xtrim(USAGE_STREAM, minid=f"{floor[0]}-{floor[1]}", approximate=False)


def _parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _next_id(entry_id: str) -> str:
    ms, seq = _parse_id(entry_id)
    return f"{ms}-{seq + 1}"


@shared_task(name="billing.usage_retention", ignore_result=True)
def usage_retention() -> int:
    """Delete usage records past TOKENBYTE_USAGE_RETENTION_DAYS (billing/retention.py)."""
    return usage_records_prune(now=timezone.now(), days=settings.TOKENBYTE_USAGE_RETENTION_DAYS)


@shared_task(name="billing.usage_bodies_drain", ignore_result=True)
def usage_bodies_drain() -> int:
    """Store what the gateway's bodies stream holds (billing/body_log.py); returns the count."""
    if not settings.REDIS_URL:
        return 0  # embedded mode: the gateway's body log writes them itself
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    with sync_client(settings.REDIS_URL, timeout=REDIS_TIMEOUT_SECONDS) as client:
        stored = bodies_drain(client, consumer=consumer)
        forget: Any = client.register_script(FORGET_EMPTY_CONSUMERS)
        forget(keys=[BODIES_STREAM], args=[BODIES_GROUP, consumer])
        return stored


@shared_task(name="billing.usage_bodies_retention", ignore_result=True)
def usage_bodies_retention() -> int:
    """Delete stored bodies past TOKENBYTE_BODY_RETENTION_DAYS (billing/retention.py)."""
    return usage_bodies_prune(now=timezone.now(), days=settings.TOKENBYTE_BODY_RETENTION_DAYS)


@shared_task(name="billing.stored_responses_retention", ignore_result=True)
def stored_responses_retention() -> int:
    """Delete stored responses past TOKENBYTE_RESPONSE_RETENTION_DAYS (billing/retention.py)."""
    days = settings.TOKENBYTE_RESPONSE_RETENTION_DAYS
    return stored_responses_prune(now=timezone.now(), days=days)
