"""The candidate upstream clients behind the gateway's transport seam, for the bench and the
conformance suite (issue 11): `make_transport(name, options)`.

Each adapter takes an UpstreamRequest and returns an httpx.Response as soon as the head arrived,
its stream yielding the body as it arrives and its aclose() closing an unfinished response's
connection; the library's own exceptions are mapped to httpx's, so proxy/upstream/pool.py's failover
works unchanged. Options map onto each library's own settings; what a library cannot do is left
undone (bench/README.md lists it), never imitated here. All: no redirects, no cookies, TLS
always verified, proxies read from the environment once, at construction; an encoded body is
decoded by the library, while the request's own `accept-encoding` (identity) is what it sends.
"""

from collections.abc import Callable

from proxy.upstream.transport import TransportOptions, UpstreamTransport

from .common import AUTO_HEADERS, Transport
from .via_aiohttp import AiohttpTransport
from .via_curl import CurlCffiTransport
from .via_reqwest import PyreqwestTransport

__all__ = ["AUTO_HEADERS", "NAMES", "Transport", "TransportOptions", "make_transport"]

# --- the choice ------------------------------------------------------------------------------
TRANSPORTS: dict[str, Callable[[TransportOptions], Transport]] = {
    "ours": UpstreamTransport,
    "aiohttp": AiohttpTransport,
    "curl_cffi": CurlCffiTransport,
    "pyreqwest": PyreqwestTransport,
    # bench only: tokio's multi-threaded runtime; reqwest's own read timeout
    "pyreqwest_mt": lambda options: PyreqwestTransport(options, multithreaded=True),
    "pyreqwest_native": lambda options: PyreqwestTransport(options, native_read_timeout=True),
}
NAMES = ("ours", "aiohttp", "curl_cffi", "pyreqwest")


def make_transport(name: str, options: TransportOptions | None = None) -> Transport:
    return TRANSPORTS[name](options or TransportOptions())
