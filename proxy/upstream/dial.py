"""Opening upstream connections: addresses, happy eyeballs, proxies, TLS.

- Addresses are looked up once per DNS_TTL and a burst of new connections shares one lookup.
  An address that failed (or lost the race to a later one) leaves the cache; when all fail,
  the host is looked up afresh next time.
- Several addresses are raced as RFC 8305 says (aiohappyeyeballs, the library under aiohttp):
  each gets its own attempt, the next starts 250 ms after the previous unless it failed
  sooner, so a dead address costs 250 ms instead of the whole connect timeout.
- HTTP_PROXY / HTTPS_PROXY / ALL_PROXY / NO_PROXY (or their lower-case forms) are read once, at
  construction, with the standard library's rules: https upstreams go through a CONNECT
  tunnel (TLS with the upstream inside it, verified as usual), http ones as absolute-form
  requests to the proxy. Proxy credentials come from the proxy URL.
- TLS: the certificate is verified against certifi's roots (plus SSL_CERT_FILE / SSL_CERT_DIR
  and the options' CA file), the host name is checked, and SNI carries the host name.
"""

import asyncio
import base64
import ipaddress
import socket
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohappyeyeballs
import httptools
import httpx

from proxy.upstream.connection import Http1Connection

DNS_TTL = 300.0
AddrInfo = tuple[Any, ...]  # (family, type, proto, canonname, sockaddr), as getaddrinfo gives
Origin = tuple[bytes, str, int]  # scheme, host, port


@dataclass(frozen=True, slots=True)
class Route:
    """How requests to one origin travel: directly, or through a proxy."""

    proxy: tuple[str, int] | None = None
    proxy_headers: tuple[tuple[bytes, bytes], ...] = ()
    absolute_form: bool = False  # http through a proxy: the request line names the origin


DIRECT = Route()


class Dialer:
    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        resolve: Mapping[str, Sequence[str]] | None,
        trust_env: bool,
        happy_eyeballs_delay: float,
    ) -> None:
        self._ssl = ssl_context
        self._overrides = {
            host: [_addrinfo(address) for address in addresses]
            for host, addresses in (resolve or {}).items()
        }
        self._delay = happy_eyeballs_delay
        self._proxies = urllib.request.getproxies_environment() if trust_env else {}
        for scheme in ("http", "https", "all"):
            if scheme in self._proxies:
                _proxy_address(self._proxies[scheme])  # refuse a bad proxy URL at start
        self._routes: dict[Origin, Route] = {}
        self._addresses: dict[tuple[str, int], tuple[float, list[AddrInfo]]] = {}
        self._lookups: dict[tuple[str, int], asyncio.Future[list[AddrInfo]]] = {}

    def route(self, origin: Origin) -> Route:
        route = self._routes.get(origin)
        if route is None:
            route = self._routes[origin] = self._route_for(origin)
        return route

    def _route_for(self, origin: Origin) -> Route:
        scheme, host, port = origin
        url = self._proxies.get(scheme.decode()) or self._proxies.get("all")
        if not url or _bypassed(host, port, self._proxies.get("no", "")):
            return DIRECT
        address, credentials = _proxy_address(url)
        headers: tuple[tuple[bytes, bytes], ...] = ()
        if credentials:
            headers = ((b"proxy-authorization", b"Basic " + base64.b64encode(credentials)),)
        return Route(address, headers, absolute_form=scheme == b"http")

    async def dial(self, origin: Origin, make: Callable[[], Http1Connection]) -> Http1Connection:
        """A connected (and, for https, verified) connection; the caller bounds the time."""
        scheme, host, port = origin
        route = self.route(origin)
        loop = asyncio.get_running_loop()
        tls = scheme == b"https"
        try:
            if route.proxy is None:
                sock = await self._connect(host, port)
                _, conn = await loop.create_connection(
                    make,
                    sock=sock,
                    ssl=self._ssl if tls else None,
                    server_hostname=host if tls else None,
                )
                return conn
            sock = await self._connect(*route.proxy)
            _, conn = await loop.create_connection(make, sock=sock)
            if tls:
                await self._tunnel(conn, host, port, route)
            return conn
        except ssl.SSLError as exc:
            raise httpx.ConnectError(f"TLS with {host}:{port} failed: {exc}") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"Cannot connect to {host}:{port}: {exc}") from exc

    async def _tunnel(self, conn: Http1Connection, host: str, port: int, route: Route) -> None:
        """CONNECT through the proxy, then TLS with the upstream inside the tunnel."""
        assert conn.transport is not None  # noqa: S101  # set by connection_made
        target = f"{host}:{port}".encode()
        head = [b"CONNECT %s HTTP/1.1\r\nhost: %s\r\n" % (target, target)]
        head += [b"%s: %s\r\n" % header for header in route.proxy_headers]
        conn.transport.write(b"".join(head) + b"\r\n")
        try:
            while not conn.headers_done:
                await conn.wait(None)  # the caller's connect timeout bounds this
        except httpx.TransportError as exc:
            conn.close()
            raise httpx.ConnectError(f"The proxy dropped the tunnel to {host}:{port}.") from exc
        if not 200 <= conn.status < 300:
            conn.close()
            raise httpx.ConnectError(
                f"The proxy refused a tunnel to {host}:{port} (HTTP {conn.status})."
            )
        loop = asyncio.get_running_loop()
        try:
            conn.transport = await loop.start_tls(
                conn.transport, conn, self._ssl, server_hostname=host
            )
        except BaseException:
            conn.close()
            raise
        conn.parser = httptools.HttpResponseParser(conn)  # the proxy's answer is behind us
        conn.begin()

    async def _connect(self, host: str, port: int) -> socket.socket:
        addresses = self._overrides.get(host)
        from_dns = addresses is None
        if addresses is None:
            addresses = await self._resolve(host, port)
        addresses = [_with_port(info, port) for info in addresses]
        try:
            sock = await aiohappyeyeballs.start_connection(
                addresses, happy_eyeballs_delay=self._delay, interleave=1
            )
        except (OSError, asyncio.CancelledError):  # all failed, or none in time
            if from_dns:
                self._addresses.pop((host, port), None)  # look the host up again next time
            raise
        if from_dns:
            self._keep_winner(host, port, addresses, sock.getpeername())
        return sock

    def _keep_winner(
        self, host: str, port: int, addresses: list[AddrInfo], winner: tuple[Any, ...]
    ) -> None:
        """The addresses tried before the winner failed or were too slow: they leave the cache."""
        order = _attempt_order(addresses)
        for index, info in enumerate(order):
            if info[4][:2] == winner[:2]:
                if index:
                    entry = self._addresses.get((host, port))
                    if entry is not None:
                        losers = {loser[4][:2] for loser in order[:index]}
                        kept = [i for i in entry[1] if i[4][:2] not in losers]
                        self._addresses[(host, port)] = (entry[0], kept)
                return

    async def _resolve(self, host: str, port: int) -> list[AddrInfo]:
        """The host's addresses, looked up once per DNS_TTL: a burst of new connections to one
        provider must not queue a thousand lookups on the executor's threads."""
        key = (host, port)
        cached = self._addresses.get(key)
        if cached is not None and cached[0] > time.monotonic() and cached[1]:
            return cached[1]
        pending = self._lookups.get(key)
        if pending is None:
            pending = self._lookups[key] = asyncio.ensure_future(self._lookup(host, port))
            pending.add_done_callback(lambda _: self._lookups.pop(key, None))
        return await asyncio.shield(pending)

    async def _lookup(self, host: str, port: int) -> list[AddrInfo]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        if not infos:
            raise OSError(f"{host} has no address")
        self._addresses[(host, port)] = (time.monotonic() + DNS_TTL, list(infos))
        return list(infos)


def _addrinfo(address: str) -> AddrInfo:
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, 0))


def _with_port(info: AddrInfo, port: int) -> AddrInfo:
    family, kind, proto, name, sockaddr = info
    return (family, kind, proto, name, (sockaddr[0], port, *sockaddr[2:]))


def _attempt_order(addresses: list[AddrInfo]) -> list[AddrInfo]:
    """The order aiohappyeyeballs tries them in with interleave=1: families alternate."""
    by_family: dict[int, list[AddrInfo]] = {}
    for info in addresses:
        by_family.setdefault(info[0], []).append(info)
    queues = list(by_family.values())
    order: list[AddrInfo] = []
    while any(queues):
        order.extend(queue.pop(0) for queue in queues if queue)
    return order


def _proxy_address(url: str) -> tuple[tuple[str, int], bytes | None]:
    parsed = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parsed.scheme != "http" or not parsed.hostname:
        raise ValueError(
            f"Unsupported proxy {parsed.scheme}://{parsed.hostname or ''}: the gateway speaks to "
            "proxies over plain http:// (https upstreams still use TLS inside the tunnel)."
        )
    credentials = None
    if parsed.username is not None:
        user = urllib.parse.unquote(parsed.username)
        password = urllib.parse.unquote(parsed.password or "")
        credentials = f"{user}:{password}".encode()
    return (parsed.hostname, parsed.port or 80), credentials


def _bypassed(host: str, port: int, no_proxy: str) -> bool:
    """NO_PROXY as curl and the standard library read it, plus CIDR ranges (10.0.0.0/8)."""
    if not no_proxy:
        return False
    # Undocumented but long-standing (urllib.request since Python 2); typeshed omits it.
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if bypass(f"{host}:{port}", {"no": no_proxy}):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    for entry in no_proxy.split(","):
        entry = entry.strip()
        if "/" in entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False
