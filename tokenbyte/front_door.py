"""The front door: what one client connection may hold, bounded where its bytes arrive.

uvicorn's httptools protocol, with the bounds it lacks (uvicorn issue #157): the request
head's size and header count (431); the time from a request's first byte to the end of its
head, and from there to the end of its body, each a total so a byte a second cannot stretch it
(408); and the idle timer armed from the moment a connection opens, not only after a response.
The common request, whose head and body arrive in one read, arms no timer of its own: uvicorn's
idle timer is armed and cancelled as before, and ours only when a read ends mid-request.

A refusal is in the API's error shape with `connection: close`; the connection then lingers
briefly, reading and dropping what the client still sends, so that the client reads the refusal
instead of a reset.

`uvicorn_options()` is the one place `manage.py serve` and the tests' LiveServer take the
server's settings from; `granian_arguments()` maps the same settings onto granian's own.
"""

import asyncio
import secrets
from typing import Any

import httptools
from django.conf import settings
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from proxy.gateway.errors import GatewayError, HeadersTooLarge, InvalidRequest, RequestTimeout

# Where a connection is in its current request.
_IDLE, _HEAD, _BODY = 0, 1, 2
# How long a refused connection keeps reading (and dropping) before it is closed.
LINGER_SECONDS = 2.0


class _Refused(Exception):
    """Raised in a parser callback to stop parsing; the refusal is in `_refusal`."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # Read per connection, so a changed setting (a test's) applies to the next connection.
        self.max_head_bytes: int = settings.TOKENBYTE_MAX_HEADER_BYTES
        self.max_headers: int = settings.TOKENBYTE_MAX_HEADERS
        self.header_timeout: float = settings.TOKENBYTE_HEADER_TIMEOUT
        self.body_timeout: float = settings.TOKENBYTE_BODY_TIMEOUT
        self.timeout_keep_alive = settings.TOKENBYTE_KEEP_ALIVE_TIMEOUT
        self.url = b""
        self._phase = _IDLE
        # Bytes fed to the parser on this connection: in all, before the read being parsed, and
        # before and after the read the current request began in.
        self._fed = self._chunk_start = self._head_from = self._head_surely_from = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._refusal: GatewayError | None = None
        self._lingering = False

    # --- connection events ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn arms its idle timer only after a response: a connection that never sends a
        # byte would be held forever.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head_timer, self._body_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = self._linger_timer = None
        self._unset_keepalive_if_required()
        super().connection_lost(exc)

    def eof_received(self) -> None:
        if self._lingering:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # what a refused client still sends
        self._unset_keepalive_if_required()
        self._chunk_start = self._fed
        self._fed += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No upgrade is served (ws="none"); uvicorn's own handling, for its log line.
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            refusal = self._refusal or InvalidRequest(
                "The request is not valid HTTP/1.1.", code="invalid_http"
            )
            self._refuse_head(refusal)
            return
        if self._phase == _HEAD:
            # Every read after the one the request began in is head: at least that much.
            if (
                self._fed - self._head_surely_from > self.max_head_bytes
                or len(self.headers) > self.max_headers
            ):
                self._refuse_head(self._too_large())
            elif self._head_timer is None:
                self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)
        elif self._phase == _BODY and self._body_timer is None:
            self._body_timer = self.loop.call_later(self.body_timeout, self._body_timed_out)

    # --- parser callbacks ----------------------------------------------------------------------
    # uvicorn's callbacks are called by name, not through super(): they run once per request.
    def on_message_begin(self) -> None:
        HttpToolsProtocol.on_message_begin(self)
        self._phase = _HEAD
        # The request began somewhere in the read being parsed.
        self._head_from, self._head_surely_from = self._chunk_start, self._fed

    def on_headers_complete(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        # The head is no longer than the reads since the one it began in; only past the limit
        # (a large read, rare) are its parts counted.
        if len(self.headers) > self.max_headers or (
            self._fed - self._head_from > self.max_head_bytes
            and len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            > self.max_head_bytes
        ):
            self._refusal = self._too_large()
            raise _Refused
        self._phase = _BODY
        HttpToolsProtocol.on_headers_complete(self)

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._phase = _IDLE
        HttpToolsProtocol.on_message_complete(self)

    # --- refusals ------------------------------------------------------------------------------
    def _too_large(self) -> HeadersTooLarge:
        return HeadersTooLarge(
            f"The request's headers are over the limit of {self.max_headers} headers and "
            f"{self.max_head_bytes} bytes with the request line."
        )

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._phase == _HEAD:
            self._refuse_head(
                RequestTimeout(
                    f"The request's headers took longer than {self.header_timeout:g} s to arrive."
                )
            )

    def _body_timed_out(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if self._phase != _BODY or self.transport.is_closing():
            return
        if cycle is None or cycle.response_started or self.pipeline:
            # The app answered before reading the whole body, or an earlier pipelined response
            # is still going out: there is no room for a 408, only for ending the connection.
            self.transport.close()
            return
        # The app stops waiting for the body (it sees the client gone) and anything it would
        # still send is dropped; the client gets the 408.
        cycle.disconnected = True
        cycle.message_event.set()
        self._refuse(
            RequestTimeout(
                f"The request's body took longer than {self.body_timeout:g} s to arrive."
            ),
            self.scope["path"],
        )

    def _refuse_head(self, error: GatewayError) -> None:
        if self.pipeline or (self.cycle is not None and not self.cycle.response_complete):
            # An earlier request's response is still going out; it must not be interleaved.
            self.transport.close()
            return
        path = self.url.partition(b"?")[0].decode("latin-1")
        self._refuse(error, path)

    def _refuse(self, error: GatewayError, path: str) -> None:
        """Answer `error` in the shape `path`'s clients read, then close after a short linger."""
        if self.transport.is_closing():
            return
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
        self._unset_keepalive_if_required()
        body = error.body_for(path)
        request_id = b"req_" + secrets.token_hex(16).encode()
        head = [STATUS_LINE[error.status]]
        for name, value in (*self.server_state.default_headers, *error.headers):
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n",
            b"x-request-id: " + request_id + b"\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self._lingering = True
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the response, then FIN: the client reads it, then EOF
        self._linger_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)


def uvicorn_options() -> dict[str, Any]:
    """uvicorn's settings, for `manage.py serve` and the tests' LiveServer alike."""
    return {
        "http": f"{__name__}:BoundedHttpToolsProtocol",
        "loop": "uvloop",
        "ws": "none",  # no WebSocket is served: no upgrade path to bound
        # tokenbyte.asgi reads X-Forwarded-* from FORWARDED_ALLOW_IPS, under any server;
        # uvicorn's own reading would trust loopback.
        "proxy_headers": False,
        "lifespan": "on",
    }


def uvicorn_arguments() -> list[str]:
    """uvicorn_options() as uvicorn's command-line options."""
    arguments = []
    for name, value in uvicorn_options().items():
        flag = name.replace("_", "-")
        if isinstance(value, bool):
            arguments.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            arguments += [f"--{flag}", str(value)]
    return arguments


def granian_arguments() -> list[str]:
    """The same bounds in granian's terms, where it has them.

    granian (hyper) answers 431 past its buffer and past 100 headers, and bounds the time to
    read a head; it has no body deadline nor idle timer: run it behind the reverse proxy.
    Its backpressure queues, so it is set above our concurrency limit, which answers the 503.
    """
    header_ms = round(settings.TOKENBYTE_HEADER_TIMEOUT * 1000)
    return [
        *("--http1-header-read-timeout", str(min(max(header_ms, 1), 60_000))),
        *("--http1-buffer-size", str(max(settings.TOKENBYTE_MAX_HEADER_BYTES, 8192))),
        *("--backpressure", str(2 * settings.TOKENBYTE_MAX_CONCURRENCY)),
    ]
