"""curl-cffi (libcurl) behind the gateway's transport seam."""

import asyncio
import math
import os
import tempfile
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from curl_cffi import AsyncCurl, Curl, ffi, lib
from curl_cffi.const import CurlECode, CurlHttpVersion, CurlMOpt, CurlOpt
from curl_cffi.curl import CURL_WRITEFUNC_PAUSE, CURLPAUSE_CONT, DEFAULT_CACERT

from proxy.upstream.request import UpstreamRequest
from proxy.upstream.transport import TransportOptions

from .common import HTTP11, decoded, env_proxies, identity

# --- curl-cffi (libcurl) ---------------------------------------------------------------------
HIGH_WATER = 256 * 1024  # pause the transfer while more than this waits for the consumer
_CURL_ERRORS: dict[int, type[httpx.TransportError]] = {
    CurlECode.COULDNT_RESOLVE_PROXY: httpx.ConnectError,
    CurlECode.COULDNT_RESOLVE_HOST: httpx.ConnectError,
    CurlECode.COULDNT_CONNECT: httpx.ConnectError,
    CurlECode.SSL_CONNECT_ERROR: httpx.ConnectError,
    CurlECode.PEER_FAILED_VERIFICATION: httpx.ConnectError,
    CurlECode.SSL_CACERT_BADFILE: httpx.ConnectError,
    CurlECode.PROXY: httpx.ConnectError,
    CurlECode.OPERATION_TIMEDOUT: httpx.ConnectTimeout,  # only CONNECTTIMEOUT is set
    CurlECode.SEND_ERROR: httpx.WriteError,
    CurlECode.RECV_ERROR: httpx.ReadError,
    CurlECode.GOT_NOTHING: httpx.RemoteProtocolError,
    CurlECode.PARTIAL_FILE: httpx.RemoteProtocolError,
    CurlECode.WEIRD_SERVER_REPLY: httpx.RemoteProtocolError,
    CurlECode.TOO_LARGE: httpx.RemoteProtocolError,
    CurlECode.BAD_CONTENT_ENCODING: httpx.RemoteProtocolError,
    CurlECode.URL_MALFORMAT: httpx.LocalProtocolError,
    CurlECode.UNSUPPORTED_PROTOCOL: httpx.RemoteProtocolError,  # e.g. a bad status line
    CurlECode.BAD_FUNCTION_ARGUMENT: httpx.LocalProtocolError,
}


class _Handle:
    """An easy handle, reused: libcurl keeps options between transfers, and curl_cffi's setopt
    costs microseconds, so what is the same as last time is not set again."""

    __slots__ = ("curl", "settings")

    def __init__(self, cafile: str) -> None:
        self.curl = Curl(cacert=cafile)
        self.settings: tuple[Any, ...] = ()


class _CurlTransfer:
    """One request on a libcurl easy handle: the head and body as libcurl's callbacks hand
    them over, for the consumer to await."""

    def __init__(self, handle: _Handle) -> None:
        self.handle = handle
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.done = False  # libcurl finished the transfer, well or not
        self.error: Exception | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None

    def on_header(self, line: bytes) -> int:
        if self.head_done:  # trailers
            return len(line)
        if line.startswith(b"HTTP/"):  # a new head: a 1xx before it is skipped
            self.status = int(line.split(None, 2)[1])
            self.headers = []
        elif line in (b"\r\n", b"\n"):
            if self.status >= 200:
                self.head_done = True
                self._wake()
        elif line[:1] in (b" ", b"\t") and self.headers:  # obsolete line folding
            name, value = self.headers[-1]
            self.headers[-1] = (name, value + b" " + line.strip())
        else:
            name, _, value = line.partition(b":")
            self.headers.append((name, value.strip()))
        return len(line)

    def on_body(self, data: bytes) -> int:
        if self.buffered > HIGH_WATER:
            self.paused = True
            return CURL_WRITEFUNC_PAUSE  # libcurl hands the same bytes over again on resume
        self.chunks.append(data)
        self.buffered += len(data)
        self._wake()
        return len(data)

    def finished(self, future: asyncio.Future[None]) -> None:
        self.done = True
        if future.cancelled():
            self.error = httpx.ReadError("The transfer was abandoned.")
        elif (exc := future.exception()) is not None:
            code = getattr(exc, "code", 0)
            self.error = _CURL_ERRORS.get(code, httpx.ReadError)(str(exc))
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self, patience: float | None) -> None:
        loop = asyncio.get_running_loop()
        waiter = self.waiter = loop.create_future()
        timer = None if patience is None else loop.call_later(patience, _expire, waiter)
        try:
            await waiter
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()

    def take(self) -> bytes:
        data = self.chunks.popleft() if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self.paused:
            self.paused = False
            self.handle.curl.pause(CURLPAUSE_CONT)
        return data


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(httpx.ReadTimeout("The upstream sent nothing in time."))


class CurlCffiTransport:
    """libcurl's multi interface on the event loop (curl_cffi.AsyncCurl) with easy handles of
    our own: curl_cffi's AsyncSession always turns libcurl's cookie engine on, and its stream
    mode returns at the first body byte rather than at the head."""

    def __init__(self, options: TransportOptions) -> None:
        self._options = options
        self._proxies = env_proxies(options.trust_env)
        self._cafile = DEFAULT_CACERT
        self._combined: str | None = None
        if options.ca_file:  # CAINFO replaces the bundle; the extra anchors go beside it
            fd, self._combined = tempfile.mkstemp(suffix=".pem")
            with os.fdopen(fd, "wb") as out:
                out.write(Path(DEFAULT_CACERT).read_bytes() + b"\n")
                out.write(Path(options.ca_file).read_bytes())
            self._cafile = self._combined
        self._multi: AsyncCurl | None = None
        self._idle: list[_Handle] = []

    def _open(self) -> AsyncCurl:
        multi = AsyncCurl(cacert=self._cafile)
        # AsyncCurl.setopt passes a long option as a pointer to it, which libcurl reads as the
        # number (no cap at all): the number goes in the pointer's place, as libcurl expects.
        cap = ffi.cast("void *", self._options.max_connections_per_origin)
        lib.curl_multi_setopt(multi._curlm, CurlMOpt.MAX_HOST_CONNECTIONS, cap)
        return multi

    def _settle(self, curl: Curl, method: str, connect: float | None, proxy: str) -> None:
        """What stays the same from one transfer to the next, after a reset."""
        o = self._options
        curl.reset()
        curl.setopt(CurlOpt.HTTP_VERSION, CurlHttpVersion.V1_1)
        curl.setopt(CurlOpt.PROTOCOLS_STR, b"http,https")
        curl.setopt(CurlOpt.NOSIGNAL, 1)
        # "": decode every encoding libcurl knows; the request's own header stays on the wire.
        curl.setopt(CurlOpt.ACCEPT_ENCODING, b"")
        curl.setopt(CurlOpt.SUPPRESS_CONNECT_HEADERS, 1)
        curl.setopt(CurlOpt.MAXAGE_CONN, max(1, math.ceil(o.keepalive_seconds)))
        curl.setopt(CurlOpt.HAPPY_EYEBALLS_TIMEOUT_MS, int(o.happy_eyeballs_delay * 1000))
        if connect is not None:
            curl.setopt(CurlOpt.CONNECTTIMEOUT_MS, max(1, int(connect * 1000)))
        curl.setopt(CurlOpt.PROXY, proxy.encode())  # "" also stops libcurl reading the env
        curl.setopt(CurlOpt.NOPROXY, self._proxies.get("no", "").encode())
        if method == "HEAD":
            curl.setopt(CurlOpt.NOBODY, 1)
        elif method == "GET":
            curl.setopt(CurlOpt.HTTPGET, 1)
        elif method != "POST":
            curl.setopt(CurlOpt.CUSTOMREQUEST, method.encode())

    def _prepare(self, handle: _Handle, request: UpstreamRequest, transfer: _CurlTransfer) -> None:
        curl, url, method = handle.curl, request.url, request.method
        if method == "GET" and request.content:
            method = "GET with a body"  # a CUSTOMREQUEST, as for any other method
        proxy = self._proxies.get(url.scheme) or self._proxies.get("all") or ""
        settings = (method, request.extensions.get("timeout", {}).get("connect"), proxy)
        if settings != handle.settings:
            self._settle(curl, *settings)
            handle.settings = settings
        curl.setopt(CurlOpt.URL, str(url).encode())
        if method not in ("GET", "HEAD"):
            curl.setopt(CurlOpt.POSTFIELDS, request.content)
            curl.setopt(CurlOpt.POSTFIELDSIZE, len(request.content))
        if self._options.resolve:  # the list of the last transfer is freed: always set it
            addresses = self._options.resolve.get(url.host)
            port = url.port or (443 if url.scheme == "https" else 80)
            listed = ",".join(f"[{a}]" if ":" in a else a for a in addresses or ())
            curl.setopt(CurlOpt.RESOLVE, [f"{url.host}:{port}:{listed}"] if addresses else [])
        lines, named = [], set()
        for name, value in identity(request.headers):
            if b"\r" in value or b"\n" in value:
                raise httpx.LocalProtocolError(f"Header {name!r} holds a line break.")
            lines.append(b"%s: %s" % (name, value) if value else name + b";")  # ";": empty
            named.add(name.lower())
        # libcurl's own defaults, unless the request sets them: none at all.
        lines += [b"%s:" % h for h in (b"accept", b"content-type", b"expect") if h not in named]
        curl.setopt(CurlOpt.HTTPHEADER, lines)
        curl.setopt(CurlOpt.HEADERFUNCTION, transfer.on_header)
        curl.setopt(CurlOpt.WRITEFUNCTION, transfer.on_body)

    async def send(self, request: UpstreamRequest) -> httpx.Response:
        multi = self._multi = self._multi or self._open()
        handle = self._idle.pop() if self._idle else _Handle(self._cafile)
        transfer = _CurlTransfer(handle)
        read = request.extensions.get("timeout", {}).get("read")
        try:
            self._prepare(handle, request, transfer)
            multi.add_handle(handle.curl).add_done_callback(transfer.finished)
            while not transfer.head_done:
                if transfer.error is not None:
                    raise transfer.error
                if transfer.done:
                    raise httpx.RemoteProtocolError("The upstream sent no response head.")
                await transfer.wait(read)
        except BaseException:
            self.release(transfer)
            raise
        return httpx.Response(
            transfer.status,
            headers=decoded(transfer.headers),
            stream=_CurlBody(self, transfer, read),
            extensions=HTTP11,
        )

    def release(self, transfer: _CurlTransfer) -> None:
        handle = transfer.handle
        if not transfer.done and self._multi is not None:
            # libcurl closes the connection of a transfer removed before its end.
            self._multi.remove_handle(handle.curl)
        handle.curl.clean_handles_and_buffers()  # frees the header list, drops the callbacks
        self._idle.append(handle)

    async def aclose(self) -> None:
        if self._multi is not None:
            await self._multi.close()
        for handle in self._idle:
            handle.curl.close()
        if self._combined:
            os.unlink(self._combined)


class _CurlBody(httpx.AsyncByteStream):
    def __init__(self, pool: CurlCffiTransport, transfer: _CurlTransfer, read: Any) -> None:
        self._pool = pool
        self._transfer: _CurlTransfer | None = transfer
        self._read: float | None = read

    async def __aiter__(self) -> AsyncIterator[bytes]:
        transfer = self._transfer
        while transfer is not None:
            if transfer.chunks:
                yield transfer.take()
            elif transfer.error is not None:
                raise transfer.error
            elif transfer.done:
                return
            else:
                await transfer.wait(self._read)

    async def aclose(self) -> None:
        transfer, self._transfer = self._transfer, None
        if transfer is not None:
            self._pool.release(transfer)
