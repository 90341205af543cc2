"""aiohttp behind the gateway's transport seam."""

import socket
import urllib.request
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from proxy.upstream.request import UpstreamRequest
from proxy.upstream.transport import TransportOptions

from .common import AUTO_HEADERS, HTTP11, decoded, env_proxies, text_headers


# --- aiohttp ---------------------------------------------------------------------------------
class _StaticResolver(AbstractResolver):
    """TransportOptions.resolve before aiohttp's own resolver (getaddrinfo on threads)."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self._table = table
        self._fallback = aiohttp.DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[ResolveResult]:
        addresses = self._table.get(host)
        if addresses is None:
            return await self._fallback.resolve(host, port, family)  # type: ignore[arg-type]
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        await self._fallback.close()


def _aiohttp_error(exc: Exception) -> Exception:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # or the pool wait: it cannot tell
        return httpx.ConnectTimeout(message)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ClientHttpProxyError):
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, aiohttp.ClientResponseError):  # the parser refused the head
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, aiohttp.ClientConnectionError):
        return httpx.ReadError(message)
    if isinstance(exc, aiohttp.InvalidURL | ValueError):
        return httpx.LocalProtocolError(message)
    return exc


class AiohttpTransport:
    def __init__(self, options: TransportOptions) -> None:
        self._options = options
        self._proxies = env_proxies(options.trust_env)
        self._ssl = httpx.create_ssl_context(trust_env=options.trust_env)
        if options.ca_file:
            self._ssl.load_verify_locations(options.ca_file)
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, tuple[URL, URL | None]] = {}
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        o = self._options
        connector = aiohttp.TCPConnector(
            limit=0,
            limit_per_host=o.max_connections_per_origin,
            keepalive_timeout=o.keepalive_seconds,
            ssl=self._ssl,
            resolver=_StaticResolver(o.resolve) if o.resolve else None,
            happy_eyeballs_delay=o.happy_eyeballs_delay,
        )
        # trust_env=False: aiohttp would read the environment and ~/.netrc (credentials!) on a
        # thread for every request; the proxies read at construction are passed per request.
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=True,  # gzip, deflate (br, zstd with their packages)
            trust_env=False,
            skip_auto_headers=AUTO_HEADERS,
            timeout=aiohttp.ClientTimeout(total=None),
        )

    def _url(self, url: httpx.URL) -> tuple[URL, URL | None]:
        text = str(url)
        cached = self._urls.get(text)
        if cached is None:
            if len(self._urls) >= 1024:
                self._urls.clear()
            proxy = self._proxies.get(url.scheme) or self._proxies.get("all")
            bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
            if proxy and bypass(url.host, self._proxies):
                proxy = None
            cached = self._urls[text] = (URL(text, encoded=True), URL(proxy) if proxy else None)
        return cached

    def _timeout(self, timeout: dict[str, float | None]) -> aiohttp.ClientTimeout:
        key = (timeout.get("connect"), timeout.get("read"), timeout.get("pool"))
        cached = self._timeouts.get(key)
        if cached is None:
            connect, read, pool = key
            # aiohttp's `connect` is its pool timeout: the wait for a free connection and, for a
            # new one, the connect too (bounded alone by sock_connect). Both raise the same error.
            cached = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, connect=pool, sock_connect=connect, sock_read=read
            )
        return cached

    async def send(self, request: UpstreamRequest) -> httpx.Response:
        session = self._session = self._session or self._open()
        url, proxy = self._url(request.url)
        try:  # aiohttp refuses line breaks in header values (ValueError)
            response = await session.request(
                request.method,
                url,
                headers=text_headers(request.headers),
                data=request.content or None,
                allow_redirects=False,
                proxy=proxy,
                timeout=self._timeout(request.extensions.get("timeout", {})),
            )
        except (aiohttp.ClientError, ValueError) as exc:
            raise _aiohttp_error(exc) from exc
        return httpx.Response(
            response.status,
            headers=decoded(response.raw_headers),
            stream=_AiohttpBody(response),
            extensions=HTTP11,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _AiohttpBody(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._read_to_end = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        while True:
            try:
                chunk = await content.readany()
            except (aiohttp.ClientError, ValueError) as exc:
                raise _aiohttp_error(exc) from exc
            if not chunk:
                self._read_to_end = True
                return
            yield chunk

    async def aclose(self) -> None:
        if self._read_to_end:
            self._response.release()  # back to the pool
        else:
            self._response.close()
