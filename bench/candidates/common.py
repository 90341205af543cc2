"""What every candidate adapter shares: the seam's type and the request's headers."""

import urllib.request
from collections.abc import Sequence
from typing import Protocol

import httpx

from proxy.upstream.request import UpstreamRequest


class Transport(Protocol):
    async def send(self, request: UpstreamRequest) -> httpx.Response: ...
    async def aclose(self) -> None: ...


HTTP11 = {"http_version": b"HTTP/1.1"}
# What the gateway's adapters send themselves; a library must not add its own.
AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


def env_proxies(trust_env: bool) -> dict[str, str]:
    """{"http": url, "https": url, "all": url, "no": "host,..."}, from the environment now."""
    return urllib.request.getproxies_environment() if trust_env else {}


def identity(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The request's headers, asking for identity unless they ask otherwise: the libraries
    decode what comes encoded all the same, but never add an accept-encoding of their own."""
    if any(name.lower() == b"accept-encoding" for name, _ in headers):
        return headers
    return [*headers, (b"accept-encoding", b"identity")]


def text_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in identity(headers)]


def decoded(headers: Sequence[tuple[bytes, bytes]]) -> Sequence[tuple[bytes, bytes]]:
    """A head whose body the library decoded, without the encoding and the encoded length."""
    if not any(name.lower() == b"content-encoding" for name, _ in headers):
        return headers
    return [(n, v) for n, v in headers if n.lower() not in (b"content-encoding", b"content-length")]
