"""How an upstream's failed answer becomes the gateway's error, and whether to fail over.

Two readers (DESIGN.md §2b): the client gets the status class and what it can act on, never
the upstream's internals; the operator's log line gets the full detail under the request id.
An upstream's own validation message (its 4xx about the request) is passed on scrubbed
(proxy/upstream/redact.py); its 5xx bodies, our exception texts and credential names never are.
"""

import logging
from typing import TYPE_CHECKING, Protocol

import httpx

from proxy.gateway.errors import GatewayError, ServiceUnavailable, UpstreamError, UpstreamTimeout
from proxy.upstream.redact import log_safe
from proxy.upstream.wording import failed, trimmed

if TYPE_CHECKING:
    from proxy.gateway.routing import Upstream

logger = logging.getLogger(__name__)


class AttemptLog(Protocol):
    """What the upstream layer reads and counts of a call (the gateway's CallRecord)."""

    request_id: str
    attempts: int
    upstream: "Upstream | None"

    @property
    def provider(self) -> str: ...

    def note_attempt(
        self, upstream: "Upstream", started: float, status: int | None, error_code: str | None
    ) -> None:
        """One try ended (`started` on the perf_counter clock): the request's attempt log."""


MAX_COOLDOWN_SECONDS = 60.0


class Failure(Exception):
    """One attempt failed in a way the next credential may not: fail over, unless `final`."""

    def __init__(
        self,
        error: GatewayError,
        cooldown: float,
        *,
        final: bool = False,
        status: int | None = None,
    ) -> None:
        super().__init__(error.message)
        self.error = error
        self.cooldown = cooldown
        self.final = final  # the call's time is up: no other credential gets a turn
        self.status = status  # the upstream's HTTP status, when it answered at all


def is_client_error(status: int) -> bool:
    """4xx that another credential would answer the same way (the request itself is wrong)."""
    return 400 <= status < 500 and status not in (401, 402, 403, 408, 409, 429)


def cite_request(error: GatewayError, request_id: str) -> GatewayError:
    """A failure of ours or an upstream's (5xx) ends with the request id the log line carries."""
    if error.status >= 500 and request_id not in error.message:
        error.message = f"{error.message} Request id: {request_id}."
    return error


def failure_for_status(provider: str, status: int, body: bytes, headers: httpx.Headers) -> Failure:
    detail = status_detail(status, body, headers)
    if status == 429:
        retry_after = _seconds(headers.get("retry-after"))
        wait = int(retry_after or 5)
        return Failure(
            ServiceUnavailable(
                failed(provider, f"is rate-limiting the gateway; retry in {wait} s"),
                code="upstream_rate_limited",
                headers=[(b"retry-after", str(wait).encode())],
                detail=detail,
            ),
            cooldown=min(retry_after or 5.0, MAX_COOLDOWN_SECONDS),
        )
    if status in (401, 402, 403):
        # Our credential (or its account), not the caller's request.
        return Failure(
            UpstreamError(
                failed(provider, f"refused the gateway's credential (HTTP {status})"),
                code="upstream_auth_failed",
                detail=detail,
            ),
            cooldown=MAX_COOLDOWN_SECONDS,
        )
    if status == 408:
        timed_out = failed(provider, "timed out (HTTP 408)")
        return Failure(UpstreamTimeout(timed_out, detail=detail), cooldown=5.0)
    what = "is overloaded (HTTP 529)" if status == 529 else f"failed (HTTP {status})"
    return Failure(UpstreamError(failed(provider, what), detail=detail), cooldown=5.0)


def transport_failure(provider: str, exc: httpx.RequestError, connect_timeout: float) -> Failure:
    """A connection that failed or broke: what happened in our words; the exception, logged.

    No connection: 503 (no upstream available). An answer the gateway cannot read (malformed,
    cut short, an encoding it did not ask for): 502. No answer in time: 504.
    """
    detail = exception_detail(exc)
    if isinstance(exc, httpx.PoolTimeout):
        # Our own saturation (every connection to that origin busy), not the upstream's fault:
        # no cooldown, and the client may come back in a moment.
        what = f"is busy: every gateway connection to it stayed in use {connect_timeout:g} s"
        return Failure(
            ServiceUnavailable(
                failed(provider, what),
                code="upstream_busy",
                headers=[(b"retry-after", b"1")],
                detail=detail,
            ),
            cooldown=0.0,
        )
    if isinstance(exc, httpx.TimeoutException):
        what = {
            httpx.ConnectTimeout: f"did not accept a connection within {connect_timeout:g} s",
            httpx.WriteTimeout: "did not take the request in time",
        }.get(type(exc), "stopped answering")
        return Failure(UpstreamTimeout(failed(provider, what), detail=detail), 5.0)
    if isinstance(exc, httpx.LocalProtocolError):  # ours to fix, not the credential's
        what = "could not be sent this request"
        return Failure(UpstreamError(failed(provider, what), detail=detail), cooldown=0.0)
    if isinstance(exc, httpx.RemoteProtocolError) or not isinstance(exc, httpx.TransportError):
        what = "sent a response the gateway could not read"
        return Failure(UpstreamError(failed(provider, what), detail=detail), cooldown=5.0)
    what = (
        "could not be reached through the configured proxy"
        if isinstance(exc, httpx.ProxyError)
        else "is unreachable"
    )
    return Failure(
        ServiceUnavailable(failed(provider, what), code="upstream_unreachable", detail=detail),
        cooldown=5.0,
    )


def status_detail(status: int, body: bytes, headers: httpx.Headers) -> str:
    their_id = headers.get("x-request-id") or headers.get("request-id")
    cited = f" (its request id {their_id})" if their_id else ""
    return f"HTTP {status}{cited}: {trimmed(body.decode(errors='replace')) or 'no body'}"


def exception_detail(exc: BaseException) -> str:
    return trimmed(f"{type(exc).__name__}: {exc}")


# --- the log lines ----------------------------------------------------------------------------
def log_failed_attempt(record: AttemptLog, upstream: "Upstream", error: GatewayError) -> None:
    """One WARNING per failed attempt: everything the client was not told, no secret."""
    logger.warning(
        "request %s: %s credential %r (id %s) failed on attempt %d: %s [client got %s %s]",
        record.request_id,
        upstream.provider,
        upstream.name,
        upstream.id,
        record.attempts,
        log_safe(error.detail or error.message, upstream.api_key),
        int(error.status),
        error.code,
    )


def log_refusal(record: AttemptLog, upstream: "Upstream", status: int, body: bytes) -> None:
    """The upstream refused the client's own request: INFO, as it is the client's to fix."""
    logger.info(
        "request %s: %s credential %r (id %s) refused the request: %s",
        record.request_id,
        upstream.provider,
        upstream.name,
        upstream.id,
        log_safe(f"HTTP {status}: {trimmed(body.decode(errors='replace'))}", upstream.api_key),
    )


def log_failed_answer(record: AttemptLog, error: GatewayError) -> None:
    """An answer that failed after the upstream accepted the call: a stream that broke off or
    errored, or a whole answer the gateway could not use. Never the answer itself: that is the
    tenant's (the console's body logging is theirs to switch on)."""
    upstream = record.upstream
    detail = error.detail or error.message
    logger.warning(
        "request %s: %s credential %r (id %s) answered, then failed: %s [client got %s]",
        record.request_id,
        record.provider,
        upstream.name if upstream else None,
        upstream.id if upstream else None,
        log_safe(detail, upstream.api_key if upstream else ""),
        error.code,
    )


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
