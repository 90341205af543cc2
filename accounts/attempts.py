"""A request's upstream tries as /logs/<id>/ draws them: a waterfall over the request's time.

Credential names are the operator's (DESIGN.md §2b keeps them out of what clients are told):
staff see them; an account sees its provider's credentials as "upstream A", "B", … in the
order this request tried them, which is all a failover needs to be read.
"""

from dataclasses import dataclass
from string import ascii_uppercase
from typing import Any

from billing.models import UsageRecord
from proxy.selectors import credential_names

WIDTH = 1000  # the waterfall's viewBox width: positions are thousandths of the request's time


@dataclass(frozen=True)
class AttemptRow:
    label: str
    status: int | None
    error_code: str | None  # None: this try's answer was the one used
    started_ms: float
    duration_ms: float
    x: float
    width: float


@dataclass(frozen=True)
class Waterfall:
    attempts: list[AttemptRow]
    # After the used try's answer began: the answer relayed to the client, to the last byte.
    relay_x: float
    relay_width: float
    relay_ms: float


def waterfall(record: UsageRecord, *, staff: bool) -> Waterfall | None:
    """None for a record written before tries were logged, or of a request that made none."""
    tries: list[dict[str, Any]] = record.attempt_log or []
    if not tries:
        return None
    total_ms = max(record.latency_us / 1000, *(t["started_ms"] + t["duration_ms"] for t in tries))
    scale = WIDTH / total_ms if total_ms > 0 else 0.0
    labels = _labels([t["credential_id"] for t in tries], record.provider, staff=staff)
    rows = [
        AttemptRow(
            label=labels[t["credential_id"]],
            status=t["status"],
            error_code=t["error_code"],
            started_ms=t["started_ms"],
            duration_ms=t["duration_ms"],
            x=round(t["started_ms"] * scale, 1),
            # At least a hairline: a try of a few microseconds stays visible.
            width=max(round(t["duration_ms"] * scale, 1), 2.0),
        )
        for t in tries
    ]
    last = tries[-1]
    answered_at = last["started_ms"] + last["duration_ms"]
    relay_ms = max(total_ms - answered_at, 0.0) if last["error_code"] is None else 0.0
    return Waterfall(
        attempts=rows,
        relay_x=round(answered_at * scale, 1),
        relay_width=round(relay_ms * scale, 1),
        relay_ms=relay_ms,
    )


def _labels(credential_ids: list[int], provider: str, *, staff: bool) -> dict[int, str]:
    order = list(dict.fromkeys(credential_ids))
    if staff:
        names = credential_names(ids=order)
        return {pk: names.get(pk, f"deleted credential #{pk}") for pk in order}
    who = provider or "the provider"
    return {pk: f"{who} upstream {_letter(n)}" for n, pk in enumerate(order)}


def _letter(n: int) -> str:
    return ascii_uppercase[n] if n < len(ascii_uppercase) else str(n + 1)
