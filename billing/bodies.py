"""A call's bodies as the client sent and received them: what body logging keeps of a request
whose account turned it on (/settings/), beside its usage record (billing/body_models.py).

They travel apart from the usage event, which stays lean for every account: the gateway hands
them to its body log (proxy/gateway/bodylog.py), which ships them to a stream of their own with
Redis (billing/body_log.py drains it) or writes them itself in embedded mode. Bodies are not
money: one lost to a crash or a long Redis outage costs a log line, never a charge.

Only bytes the client itself sent or was sent are kept: the request's body (never its headers,
so never its Authorization or x-api-key) and the answer's body, a stream's as its SSE text.
What the gateway sent upstream, with the upstream's credential, is never seen here.
"""

from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class Excerpt:
    """One body, cut at the operator's limit (TOKENBYTE_BODY_LOG_MAX_BYTES)."""

    text: str  # the kept bytes as UTF-8 (undecodable bytes and NULs replaced)
    size: int  # the whole body's size in bytes
    truncated: bool  # whether bytes past the limit were left out

    @classmethod
    def of(cls, data: bytes, size: int, limit: int) -> "Excerpt":
        """`data`: the body's first bytes (at least `limit` of them when there were more);
        `size`: the whole body's."""
        kept = data[:limit]
        text = kept.decode("utf-8", errors="replace")
        if "\x00" in text:  # PostgreSQL's text cannot hold NUL; a JSON body has none anyway
            text = text.replace("\x00", "\ufffd")
        return cls(text, size, size > len(kept))


@dataclass(frozen=True, slots=True)
class CapturedBodies:
    """One call's bodies, keyed by its usage event's id (its record's `event_id`)."""

    event_id: str
    account_id: int
    started_us: int  # the call's start (its usage event's), in microseconds since the epoch
    request: Excerpt
    response: Excerpt
    status: int  # the HTTP status the client was sent (0: none, it left first)

    def to_json(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def from_json(cls, raw: bytes | str) -> "CapturedBodies":
        data = orjson.loads(raw)
        data["request"] = Excerpt(**data["request"])
        data["response"] = Excerpt(**data["response"])
        return cls(**data)
