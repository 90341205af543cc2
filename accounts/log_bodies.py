"""/logs/<id>/'s stored bodies (body logging): each shown as pretty-printed JSON when it parses,
else as its text (escaped by the template), a stream as the SSE text its client received and
the answer's text re-assembled from it; or why there are none."""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from billing.body_log import usage_body_get
from billing.body_models import UsageBody
from billing.models import UsageRecord


@dataclass(frozen=True)
class ShownBody:
    text: str  # pretty-printed when it was whole JSON
    size: int  # the whole body's bytes
    kept: int  # the bytes stored
    truncated: bool
    json: bool


@dataclass(frozen=True)
class ShownBodies:
    request: ShownBody
    response: ShownBody
    assembled: str | None  # a stream's answer text, from its events (None: not a stream)


@dataclass(frozen=True)
class BodiesView:
    bodies: ShownBodies | None
    expired: bool  # none stored, and the request is older than bodies are kept
    retention_days: int


def _shown(text: str, size: int, truncated: bool) -> ShownBody:
    kept = len(text.encode())
    if not truncated and text[:1] in "{[":
        try:
            parsed = json.loads(text)
        except ValueError:
            pass
        else:
            pretty = json.dumps(parsed, indent=2, ensure_ascii=False)
            return ShownBody(pretty, size, kept, truncated, json=True)
    return ShownBody(text, size, kept, truncated, json=False)


def assembled_text(sse: str) -> str:
    """The answer's text from a stream's events: OpenAI's chunks' `delta.content`, Anthropic's
    `content_block_delta` text; events of other shapes (and a cut last one) are skipped."""
    parts: list[str] = []
    for line in sse.splitlines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if not data.startswith("{"):
            continue
        try:
            event = json.loads(data)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        for choice in event.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str):
                parts.append(content)
        delta = event.get("delta")
        if event.get("type") == "content_block_delta" and isinstance(delta, dict):
            text = delta.get("text")
            if isinstance(text, str):
                parts.append(text)
    return "".join(parts)


def _shown_bodies(row: UsageBody, *, stream: bool) -> ShownBodies:
    return ShownBodies(
        request=_shown(row.request_text, row.request_bytes, row.request_truncated),
        response=_shown(row.response_text, row.response_bytes, row.response_truncated),
        assembled=assembled_text(row.response_text) if stream else None,
    )


def log_bodies_view(*, account_id: int, record: UsageRecord, now: datetime) -> BodiesView:
    """The stored bodies of one of the account's records (another account's are never found:
    the lookup is by the account and the record's id both)."""
    days = settings.TOKENBYTE_BODY_RETENTION_DAYS
    row = usage_body_get(account_id=account_id, event_id=record.event_id)
    if row is None:
        expired = bool(days) and record.started_at < now - timedelta(days=days)
        return BodiesView(None, expired, days)
    return BodiesView(_shown_bodies(row, stream=record.stream), False, days)
