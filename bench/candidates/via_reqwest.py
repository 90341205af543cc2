"""pyreqwest (Rust reqwest / hyper) behind the gateway's transport seam."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from pyreqwest import exceptions as rq
from pyreqwest.client import Client, ClientBuilder
from pyreqwest.proxy import ProxyBuilder
from pyreqwest.request import StreamRequest
from pyreqwest.response import Response as RqResponse

from proxy.upstream.request import UpstreamRequest
from proxy.upstream.transport import TransportOptions

from .common import HTTP11, env_proxies, text_headers


# --- pyreqwest (Rust reqwest / hyper) --------------------------------------------------------
def _reqwest_error(exc: rq.PyreqwestError) -> Exception:
    causes = getattr(exc, "details", {}).get("causes") or [{"message": ""}]
    cause = causes[-1]["message"]
    if cause == "connection closed before message completed":
        # hyper's IncompleteMessage: the request was sent; pyreqwest calls it ConnectError.
        return httpx.RemoteProtocolError(cause)
    message = f"{exc.message}: {cause}" if cause else exc.message
    for cls, mapped in (
        (rq.ConnectTimeoutError, httpx.ConnectTimeout),
        (rq.PoolTimeoutError, httpx.PoolTimeout),
        (rq.WriteTimeoutError, httpx.WriteTimeout),
        (rq.RequestTimeoutError, httpx.ReadTimeout),
        (rq.ConnectError, httpx.ConnectError),
        (rq.WriteError, httpx.WriteError),
        (rq.ReadError, httpx.ReadError),
        (rq.BuilderError, httpx.LocalProtocolError),
        (rq.DecodeError, httpx.RemoteProtocolError),
        (rq.RequestError, httpx.RemoteProtocolError),  # hyper's parse and framing errors
    ):
        if isinstance(exc, cls):
            return mapped(message)
    return exc


class PyreqwestTransport:
    """One pyreqwest Client per origin: its max_connections caps in-flight requests per client,
    which per origin is the cap TransportOptions asks for. Its connect and pool timeouts are
    per client too: the first request's (the gateway's are process-wide settings).

    reqwest's read timeout (the longest silence) is per client, so the request's is kept here
    with asyncio.timeout; `native_read_timeout` uses reqwest's own instead, at the price of one
    client, pool and cap per origin and read timeout (bench only, to show what it costs)."""

    def __init__(
        self,
        options: TransportOptions,
        multithreaded: bool = False,
        native_read_timeout: bool = False,
    ) -> None:
        self._options = options
        self._multithreaded = multithreaded
        self._native_read = native_read_timeout
        proxies = env_proxies(options.trust_env)
        self._proxies = [
            make(proxies[scheme]).no_proxy(proxies.get("no"))
            for scheme, make in (
                ("http", ProxyBuilder.http),
                ("https", ProxyBuilder.https),
                ("all", ProxyBuilder.all),
            )
            if proxies.get(scheme)
        ]
        self._ca = Path(options.ca_file).read_bytes() if options.ca_file else None
        self._clients: dict[tuple[Any, ...], Client] = {}

    def _client(self, url: httpx.URL, timeout: dict[str, float | None]) -> Client:
        read = timeout.get("read") if self._native_read else None
        key = (url.raw_scheme, url.host, url.port, read)
        client = self._clients.get(key)
        if client is None:
            o, connect, pool = self._options, timeout.get("connect"), timeout.get("pool")
            builder = (
                ClientBuilder()
                .runtime_multithreaded(self._multithreaded)
                .http1_only()
                .http1_lower_case_headers()
                .follow_redirects(False)
                .referer(False)
                .max_connections(o.max_connections_per_origin)
                .pool_idle_timeout(timedelta(seconds=o.keepalive_seconds))
            )
            if connect is not None:
                builder = builder.connect_timeout(timedelta(seconds=connect))
            if pool is not None:
                builder = builder.pool_timeout(timedelta(seconds=pool))
            if read is not None:
                builder = builder.read_timeout(timedelta(seconds=read))
            if self._ca is not None:
                builder = builder.add_root_certificate_pem(self._ca)
            for host, addresses in (o.resolve or {}).items():
                # reqwest takes a list, pyreqwest one address: the first; port 0 = the URL's.
                builder = builder.resolve(host, addresses[0], 0)
            builder = builder.no_proxy()  # not reqwest's own reading of the environment
            for proxy in self._proxies:
                builder = builder.proxy(proxy)
            client = self._clients[key] = builder.build()
        return client

    async def send(self, request: UpstreamRequest) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        read = None if self._native_read else timeout.get("read")  # kept here, head included
        client = self._client(request.url, timeout)
        try:
            builder = client.request(request.method, str(request.url))
            builder = builder.headers(text_headers(request.headers))
            if request.content or request.method not in ("GET", "HEAD"):
                builder = builder.body_bytes(request.content)
            # 0: hand bytes over as they arrive (the default withholds them up to 64 KiB).
            streamed = builder.streamed_read_buffer_limit(0).build_streamed()
        except (rq.PyreqwestError, ValueError) as exc:
            raise httpx.LocalProtocolError(f"pyreqwest refused the request: {exc}") from exc
        try:
            if read is None:
                response = await streamed.__aenter__()
            else:
                async with asyncio.timeout(read):
                    response = await streamed.__aenter__()
        except rq.PyreqwestError as exc:  # before TimeoutError: its timeouts subclass it
            raise _reqwest_error(exc) from exc
        except TimeoutError:
            raise httpx.ReadTimeout("The upstream sent nothing in time.") from None
        try:
            # Grouped by name (http::HeaderMap), not in wire order; values must be UTF-8.
            headers = [(k.encode(), v.encode()) for k, v in response.headers.items()]
        except ValueError as exc:
            await streamed.__aexit__(None, None, None)
            raise httpx.RemoteProtocolError(f"A header pyreqwest cannot show: {exc}") from exc
        return httpx.Response(
            response.status,
            headers=headers,
            stream=_ReqwestBody(streamed, response, read),
            extensions=HTTP11,
        )

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


class _ReqwestBody(httpx.AsyncByteStream):
    def __init__(self, streamed: StreamRequest, response: RqResponse, read: Any) -> None:
        self._streamed: StreamRequest | None = streamed
        self._reader = response.body_reader
        self._read: float | None = read

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            try:
                if self._read is None:
                    chunk = await self._reader.read_chunk()
                else:
                    async with asyncio.timeout(self._read):
                        chunk = await self._reader.read_chunk()
            except rq.PyreqwestError as exc:
                raise _reqwest_error(exc) from exc
            except TimeoutError:
                raise httpx.ReadTimeout("The upstream sent nothing in time.") from None
            if chunk is None:
                return
            yield bytes(chunk)

    async def aclose(self) -> None:
        streamed, self._streamed = self._streamed, None
        if streamed is not None:  # hyper pools the connection only if the body was read out
            await streamed.__aexit__(None, None, None)
