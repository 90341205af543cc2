"""One call to a provider as an adapter builds it: the type providers and transports share."""

from typing import Any

import httpx

Headers = list[tuple[bytes, bytes]]


class UpstreamRequest:
    """One call to a provider, as an adapter builds it."""

    __slots__ = ("content", "extensions", "headers", "method", "url")

    def __init__(self, method: str, url: httpx.URL, headers: Headers, content: bytes) -> None:
        self.method = method
        self.url = url
        self.headers = headers  # without Host and Content-Length: the transport adds them
        self.content = content
        self.extensions: dict[str, Any] = {}

    def to_httpx(self) -> httpx.Request:
        """For httpx's own transports (HTTP/2)."""
        request = httpx.Request(self.method, self.url, headers=self.headers, content=self.content)
        request.extensions = self.extensions
        return request
