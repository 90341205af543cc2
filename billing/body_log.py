"""Body logging's reads and writes: calls' bodies stored (from the gateway's own writer in
embedded mode, or drained from their Redis stream here), one call's bodies for /logs/<id>/,
and the account's calls whose bodies hold a text, for the logs' search.

The drain is the usage drain's (billing/tasks.py) made simpler, since bodies are not money:
each run claims what a dead consumer left pending, reads new entries batch by batch for at most
a few seconds, stores each batch (idempotent on the event id) and only then acknowledges and
deletes its entries. An entry it cannot read is logged and dropped.
"""

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q
from redis import Redis
from redis.exceptions import ResponseError

from billing.bodies import CapturedBodies
from billing.body_models import UsageBody
from tokenbyte.redis import BODIES_GROUP, BODIES_STREAM

logger = logging.getLogger(__name__)

DRAIN_BATCH = 200  # entries per read: up to 2 x TOKENBYTE_BODY_LOG_MAX_BYTES each
CLAIM_IDLE_MS = 60_000
DRAIN_BUDGET_SECONDS = 5
# The logs' search lists at most this many calls found by their bodies (the newest).
SEARCH_MATCHES = 1000

Entry = tuple[bytes, dict[bytes, bytes]]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _row(bodies: CapturedBodies) -> UsageBody:
    return UsageBody(
        event_id=bodies.event_id,
        account_id=bodies.account_id,
        created_at=EPOCH + timedelta(microseconds=bodies.started_us),
        status=bodies.status,
        request_text=bodies.request.text,
        request_bytes=bodies.request.size,
        request_truncated=bodies.request.truncated,
        response_text=bodies.response.text,
        response_bytes=bodies.response.size,
        response_truncated=bodies.response.truncated,
    )


def usage_bodies_store(*, bodies: Sequence[CapturedBodies]) -> int:
    """Store calls' bodies; those stored before are left as they are. Returns how many were
    offered (a replay counts again: bodies are not counted anywhere that must be exact)."""
    if not bodies:
        return 0
    rows = [_row(item) for item in bodies]
    try:
        with transaction.atomic():
            UsageBody.objects.bulk_create(rows, ignore_conflicts=True)
    except IntegrityError:
        # An account deleted since its call (the one foreign key): store the others.
        accounts = get_user_model().objects.filter(pk__in={row.account_id for row in rows})
        known = set(accounts.values_list("pk", flat=True))
        rows = [row for row in rows if row.account_id in known]
        with transaction.atomic():
            UsageBody.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def usage_body_get(*, account_id: int, event_id: str) -> UsageBody | None:
    """The bodies stored for one of the account's calls; None for anyone else's."""
    return UsageBody.objects.filter(account_id=account_id, event_id=event_id).first()


def usage_bodies_exist(*, account_id: int) -> bool:
    """Whether the account has any stored bodies (then the logs' search looks in them)."""
    return UsageBody.objects.filter(account_id=account_id).exists()


def usage_bodies_matching(*, account_id: int, text: str) -> list[str]:
    """The event ids of the account's newest calls (at most SEARCH_MATCHES) whose stored
    request or response holds `text`, in any case, for the logs' search, which then fetches
    their records by id. On PostgreSQL the trigram indexes of migration 0012_usage_bodies find
    them; on SQLite, LIKE scans the account's bodies (kept for days)."""
    matches = UsageBody.objects.filter(
        Q(request_text__icontains=text) | Q(response_text__icontains=text),
        account_id=account_id,
    ).order_by("-created_at")
    return list(matches.values_list("event_id", flat=True)[:SEARCH_MATCHES])


def bodies_drain(client: Redis, *, consumer: str, budget: int = DRAIN_BUDGET_SECONDS) -> int:
    """Store what the bodies' stream holds (one run); returns how many were stored."""
    try:
        client.xgroup_create(BODIES_STREAM, BODIES_GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    stored, start = 0, "0-0"
    while True:  # what a consumer that stopped mid-batch left
        claimed: Any = client.xautoclaim(
            BODIES_STREAM, BODIES_GROUP, consumer, CLAIM_IDLE_MS, start_id=start, count=DRAIN_BATCH
        )
        start = claimed[0]
        if claimed[1]:
            stored += _store(client, claimed[1])
        if start in (b"0-0", "0-0"):
            break
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        reply: Any = client.xreadgroup(
            BODIES_GROUP, consumer, {BODIES_STREAM: ">"}, count=DRAIN_BATCH
        )
        if not reply or not reply[0][1]:
            break
        stored += _store(client, reply[0][1])
    return stored


def _store(client: Redis, entries: list[Entry]) -> int:
    bodies = []
    for entry_id, fields in entries:
        try:
            bodies.append(CapturedBodies.from_json(fields[b"bodies"]))
        except (KeyError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
            logger.error("stored bodies: entry %r is unreadable (%s); dropped", entry_id, exc)
    stored = usage_bodies_store(bodies=bodies)
    ids = [entry_id for entry_id, _ in entries]
    with client.pipeline(transaction=False) as pipe:
        pipe.xack(BODIES_STREAM, BODIES_GROUP, *ids)
        pipe.xdel(BODIES_STREAM, *ids)
        pipe.execute()
    return stored
