"""GET /metrics: the Prometheus exposition (tokenbyte/metrics.py), for operators only.

With TOKENBYTE_METRICS_TOKEN set, the request must carry `Authorization: Bearer <token>`
(401 otherwise), from anywhere. Without it, only a loopback peer may read it, and only when no
proxy forwarded the request: behind the shipped nginx the peer is loopback too, so a request
carrying X-Forwarded-For, Forwarded or X-Real-IP is refused (403), whoever forwarded it; scrape
the server's own port, or set the token.
"""

import asyncio
import hmac
import logging
from collections.abc import Iterator

from django.db import connection
from prometheus_client.core import GaugeMetricFamily

from billing.metering_queue import metering_queue_state
from proxy.gateway.errors import (
    AuthenticationFailed,
    GatewayError,
    MethodNotAllowed,
    PermissionDenied,
)
from proxy.gateway.http import Response, Scope, Send, send_response
from tokenbyte.metrics import exposition

logger = logging.getLogger(__name__)
PATH = "/metrics"
LOOPBACK = frozenset({"127.0.0.1", "::1"})
FORWARDING_HEADERS = frozenset({b"x-forwarded-for", b"forwarded", b"x-real-ip"})


class MeteringQueueCollector:
    """Usage events durable but not yet recorded, read at each scrape (billing/metering_queue.py):
    how far the Celery consumer (or the embedded recorder) is behind."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            state = metering_queue_state()
        except Exception as exc:  # a scrape still answers with every other metric
            logger.warning("the metering queue could not be read: %s", exc)
            return
        finally:
            connection.close()  # this scrape's thread: no connection left to go stale
        yield GaugeMetricFamily(
            "tokenbyte_metering_queue_events",
            "Usage events durable (Redis stream or database inbox) but not yet recorded.",
            value=state.events,
        )
        yield GaugeMetricFamily(
            "tokenbyte_metering_queue_age_seconds",
            "Age of the oldest usage event not yet recorded (0 when none waits).",
            value=state.oldest_age_ms / 1000,
        )


METERING_QUEUE = MeteringQueueCollector()


def refusal(scope: Scope, token: str) -> GatewayError | None:
    """Why this request may not read the metrics, or None when it may."""
    if scope["method"] not in ("GET", "HEAD"):
        return MethodNotAllowed("/metrics answers GET.")
    headers = scope["headers"]
    if token:
        presented = next((value for name, value in headers if name == b"authorization"), b"")
        if hmac.compare_digest(presented, b"Bearer " + token.encode()):
            return None
        return AuthenticationFailed(
            "/metrics needs `Authorization: Bearer <TOKENBYTE_METRICS_TOKEN>`.",
            code="invalid_metrics_token",
        )
    client = scope.get("client")
    forwarded = any(name in FORWARDING_HEADERS for name, _ in headers)
    if client is None or client[0] not in LOOPBACK or forwarded:
        return PermissionDenied(
            "/metrics is served to loopback clients only, not through a proxy; set "
            "TOKENBYTE_METRICS_TOKEN to scrape it from elsewhere.",
            code="metrics_forbidden",
        )
    return None


async def serve_metrics(scope: Scope, send: Send, *, token: str, request_id: str) -> None:
    error = refusal(scope, token)
    if error is not None:
        headers = [(b"content-type", b"application/json"), *error.headers]
        if error.status == AuthenticationFailed.status:
            headers.append((b"www-authenticate", b"Bearer"))
        await send_response(send, Response(error.status, error.body_for(PATH), headers), request_id)
        return
    # Merging the processes' files reads the disk, the queue's state Redis and the database:
    # off the event loop.
    body, content_type = await asyncio.to_thread(exposition, METERING_QUEUE)
    if scope["method"] == "HEAD":
        body = b""
    await send_response(
        send, Response(200, body, [(b"content-type", content_type.encode())]), request_id
    )
