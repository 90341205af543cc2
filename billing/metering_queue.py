"""What is durable but not yet recorded: the metering queue's length and its oldest event's age.

With Redis, the usage stream's entries the Celery consumer group has not acknowledged (not yet
delivered, or delivered to a worker that has not committed them); in either mode, the usage
inbox's rows (embedded mode's queue, and Redis mode's while its breaker is open). Read at
scrape time by /metrics (tokenbyte/metrics_endpoint.py): a few Redis commands and one indexed
query, never a pass over the queue.
"""

import logging
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, Min

from billing.models import UsageInbox
from tokenbyte.redis import USAGE_GROUP, USAGE_STREAM, sync_client

logger = logging.getLogger(__name__)
REDIS_TIMEOUT_SECONDS = 0.5
COUNT_CAP = 10_000  # undelivered entries counted one by one only when Redis cannot say


@dataclass(frozen=True)
class QueueState:
    events: int
    oldest_age_ms: int  # 0 when the queue is empty


def metering_queue_state() -> QueueState:
    """The queue now; raises RedisError when Redis was configured and could not be read."""
    inbox = UsageInbox.objects.aggregate(events=Count("pk"), oldest=Min("written_at"))
    events = inbox["events"]
    oldest_ms = None if inbox["oldest"] is None else int(inbox["oldest"].timestamp() * 1000)
    if settings.REDIS_URL:
        with sync_client(settings.REDIS_URL, timeout=REDIS_TIMEOUT_SECONDS) as client:
            waiting, first_ms = _stream_backlog(client)
        events += waiting
        if first_ms is not None:
            oldest_ms = first_ms if oldest_ms is None else min(oldest_ms, first_ms)
    age_ms = 0 if oldest_ms is None else max(time.time_ns() // 1_000_000 - oldest_ms, 0)
    return QueueState(events=events, oldest_age_ms=age_ms)


def _stream_backlog(client: Any) -> tuple[int, int | None]:
    """(entries not acknowledged, the oldest one's time in ms, from its stream id)."""
    if not client.exists(USAGE_STREAM):
        return 0, None
    groups = {_id(g["name"]): g for g in client.xinfo_groups(USAGE_STREAM)}
    group = groups.get(USAGE_GROUP.encode())
    if group is None:  # no consumer has read the stream yet: all of it waits
        first = client.xrange(USAGE_STREAM, count=1)
        return client.xlen(USAGE_STREAM), _ms(first[0][0]) if first else None
    pending = int(group["pending"])
    after = group["last-delivered-id"]
    undelivered = group.get("lag")
    if undelivered is None:  # Redis could not compute it (entries deleted mid-stream)
        undelivered = len(client.xrange(USAGE_STREAM, min=b"(" + _id(after), count=COUNT_CAP))
    oldest: int | None = None
    if pending:
        summary = client.xpending(USAGE_STREAM, USAGE_GROUP)
        oldest = _ms(summary["min"])
    elif undelivered:
        first = client.xrange(USAGE_STREAM, min=b"(" + _id(after), count=1)
        oldest = _ms(first[0][0]) if first else None
    return pending + int(undelivered), oldest


def _id(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _ms(stream_id: bytes | str) -> int:
    return int(_id(stream_id).split(b"-", 1)[0])


__all__ = ["QueueState", "metering_queue_state"]
