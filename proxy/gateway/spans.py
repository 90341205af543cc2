"""A request's spans, built from its usage event and sent over OTLP/HTTP (protobuf).

Imported only when tracing is on (proxy/gateway/tracing.py). A request's part is one append
to a queue as its usage event is emitted; a thread of the process turns the queue into OTLP
protobuf, a batch at a time (proxy/gateway/span_encoding.py), and posts it.

What configures it is OpenTelemetry's standard environment, read as its SDK reads it:
OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT (the generic one gets /v1/traces appended), _HEADERS,
_TIMEOUT (seconds), _COMPRESSION (gzip or none), _CERTIFICATE, _CLIENT_CERTIFICATE and
_CLIENT_KEY; OTEL_TRACES_SAMPLER(_ARG), through the SDK's own sampler; OTEL_BSP_SCHEDULE_DELAY,
_MAX_QUEUE_SIZE (requests here, not spans), _MAX_EXPORT_BATCH_SIZE and _EXPORT_TIMEOUT;
OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES through the SDK's Resource (service.name
defaults to "tokenbyte"). Only the http/protobuf protocol is spoken.
"""

import collections
import gzip
import logging
import math
import os
import threading
import time
from contextvars import ContextVar

import httpx
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util.re import parse_env_headers

from billing.events import UsageEvent
from proxy.gateway.http import Headers
from proxy.gateway.span_encoding import SpanEncoder

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "tokenbyte"

# Where an upstream said nothing to retry after (429, 502-504, no answer), the next tries' waits.
RETRY_WAITS = (1.0, 2.0)
RETRY_STATUSES = frozenset({429, 502, 503, 504})
PROTOBUF = "application/x-protobuf"
# At a stop, how long the spans still queued may take to leave (`manage.py serve` gives its
# children 7 s in all, and the server's own graceful wait comes first).
SHUTDOWN_SECONDS = 2.0


def _env(name: str, default: str = "") -> str:
    """OTEL_EXPORTER_OTLP_TRACES_<name>, else OTEL_EXPORTER_OTLP_<name>."""
    return (
        os.environ.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}")
        or os.environ.get(f"OTEL_EXPORTER_OTLP_{name}")
        or default
    )


def _milliseconds(name: str, default: int) -> int:
    try:
        return max(int(os.environ.get(name, default)), 0)
    except ValueError:
        logger.warning("%s is not a whole number of milliseconds; using %d", name, default)
        return default


def traces_endpoint() -> str:
    """Where spans are posted, as OpenTelemetry's exporters resolve it."""
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if endpoint:
        return endpoint
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318"
    return f"{base.removesuffix('/')}/v1/traces"


class _Poster:
    """One OTLP/HTTP client: the endpoint, headers, timeout, compression and TLS the env says."""

    def __init__(self) -> None:
        protocol = _env("PROTOCOL", "http/protobuf")
        if protocol != "http/protobuf":
            logger.warning("OTLP protocol %s asked for: traces are sent as http/protobuf", protocol)
        self.endpoint = traces_endpoint()
        compression = _env("COMPRESSION", "none").strip().lower()
        self.gzip = compression == "gzip"
        if compression not in ("gzip", "none"):
            logger.warning(
                "OTLP compression %s is not supported; sending uncompressed", compression
            )
        headers = {"content-type": PROTOBUF, "user-agent": "tokenbyte-otlp"}
        headers.update(parse_env_headers(_env("HEADERS"), liberal=True))
        if self.gzip:
            headers["content-encoding"] = "gzip"
        try:
            timeout = float(_env("TIMEOUT", "10"))
        except ValueError:
            timeout = 10.0
        certificate, client_cert, client_key = (
            _env("CERTIFICATE"),
            _env("CLIENT_CERTIFICATE"),
            _env("CLIENT_KEY"),
        )
        self.timeout = timeout
        self.client = httpx.Client(
            headers=headers,
            timeout=timeout,
            verify=certificate or True,
            cert=((client_cert, client_key) if client_key else client_cert)
            if client_cert
            else None,
        )

    def post(self, body: bytes, spans: int, deadline: float) -> None:
        """Send one batch, retried after a refusal that may pass; dropped (with a warning) when
        it cannot be sent by `deadline`."""
        data = gzip.compress(body, compresslevel=6) if self.gzip else body
        problem = "no time left"
        for wait in (0.0, *RETRY_WAITS):
            if time.monotonic() + wait >= deadline:
                break
            time.sleep(wait)
            timeout = min(self.timeout, deadline - time.monotonic())
            try:
                response = self.client.post(self.endpoint, content=data, timeout=timeout)
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
                continue
            if response.status_code < 300:
                return
            problem = f"HTTP {response.status_code}"
            if response.status_code not in RETRY_STATUSES:
                break
        logger.warning(
            "OTLP export to %s failed (%s): %d spans dropped", self.endpoint, problem, spans
        )

    def close(self) -> None:
        self.client.close()


class Spans:
    """This process's trace exporter: a queue of ended requests and the thread that sends them."""

    def __init__(self, request_headers: ContextVar[Headers]) -> None:
        """`request_headers`: each request's headers as the app sets them (tracing.py)."""
        self._headers = request_headers
        resource = Resource.create()
        service = resource.attributes.get(SERVICE_NAME)
        if not isinstance(service, str) or service.startswith("unknown_service"):
            resource = Resource.create({SERVICE_NAME: DEFAULT_SERVICE_NAME})
        # The SDK's sampler as OTEL_TRACES_SAMPLER(_ARG) choose it (a provider reads them).
        sampler = TracerProvider(resource=resource, shutdown_on_exit=False).sampler
        self._encoder = SpanEncoder(resource, sampler)
        self._poster = _Poster()
        self._delay = _milliseconds("OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self._limit = _milliseconds("OTEL_BSP_MAX_QUEUE_SIZE", 2048) or 2048
        self._batch = min(_milliseconds("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512) or 512, self._limit)
        self._timeout = _milliseconds("OTEL_BSP_EXPORT_TIMEOUT", 30000) / 1000
        self._queue: collections.deque[tuple[UsageEvent, Headers | None]] = collections.deque()
        self._wake = threading.Event()
        self._stopping = False
        self._last_call = math.inf  # when the process stops: no export goes on past it
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name="otlp-traces", daemon=True)
        self._thread.start()

    def export(self, event: UsageEvent) -> None:
        """Queue the ended request for its spans (on the request path: one append)."""
        queue = self._queue
        if len(queue) >= self._limit:
            self._dropped += 1
            return
        queue.append((event, self._headers.get(None)))
        if len(queue) == self._batch:
            self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._delay)
            self._wake.clear()
            self._send_queued()
        self._send_queued()

    def _send_queued(self) -> None:
        queue = self._queue
        while queue:
            batch = [queue.popleft() for _ in range(min(self._batch, len(queue)))]
            deadline = min(time.monotonic() + self._timeout, self._last_call)
            try:
                body, spans = self._encoder.encode(batch)
                if spans:
                    self._poster.post(body, spans, deadline)
            except Exception:
                logger.exception("OTLP export failed: %d requests' spans dropped", len(batch))
            if self._dropped:
                dropped, self._dropped = self._dropped, 0
                logger.warning("OTLP queue full: %d requests' spans dropped", dropped)

    def shutdown(self) -> None:
        """Send what is queued, within SHUTDOWN_SECONDS (the server's stop is bounded), and stop
        the thread."""
        self._last_call = time.monotonic() + SHUTDOWN_SECONDS
        self._stopping = True
        self._wake.set()
        self._thread.join(SHUTDOWN_SECONDS + 1)
        self._poster.close()


__all__ = ["Spans", "traces_endpoint"]
