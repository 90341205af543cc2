"""The adapter contract: pure translation between the gateway's OpenAI-shaped API and a provider.

Adapters do no I/O. They build the UpstreamRequest, turn the upstream's answer into an
OpenAI-shaped body plus Usage buckets, and translate streams event by event.
"""

import functools
from typing import Any

import httpx

from billing.usage import Usage, estimate_tokens, prompt_chars
from proxy.gateway.errors import GatewayError, InvalidRequest, PayloadTooLarge, UpstreamError
from proxy.gateway.routing import Card, Upstream
from proxy.gateway.sse import Event
from proxy.upstream.request import UpstreamRequest
from proxy.upstream.wording import upstream_message

USER_AGENT = b"TokenByte/0.1"


@functools.lru_cache(maxsize=512)
def upstream_url(base_url: str, path: str) -> httpx.URL:
    return httpx.URL(base_url + path)


def _common_headers(accept: bytes) -> tuple[tuple[bytes, bytes], ...]:
    return (
        (b"content-type", b"application/json"),
        (b"accept", accept),
        # We relay bytes as they come; compressed streams would need decoding first.
        (b"accept-encoding", b"identity"),
        (b"user-agent", USER_AGENT),
    )


_STREAM_HEADERS = _common_headers(b"text/event-stream")
_JSON_HEADERS = _common_headers(b"application/json")


def json_headers(*auth: tuple[bytes, bytes], stream: bool) -> list[tuple[bytes, bytes]]:
    return [*auth, *(_STREAM_HEADERS if stream else _JSON_HEADERS)]


def get_headers(*auth: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    """For a GET: no body, so no content-type."""
    return [*auth, *(header for header in _JSON_HEADERS if header[0] != b"content-type")]


class StreamTranslator:
    """Turns one upstream stream into OpenAI chat.completion.chunk dicts, event by event."""

    def __init__(self, card: Card) -> None:
        self.card = card
        self.usage: Usage | None = None  # as the upstream reported it
        self.done = False  # the upstream said the stream is complete
        self.response_id = ""
        self.created = 0
        self.finish_reason: str | None = None
        # For an estimate when the upstream never reports usage (client left early).
        self.delta_chars = 0
        self.delta_count = 0

    def feed(self, event: Event) -> list[dict[str, Any]]:
        raise NotImplementedError

    def finish(self) -> list[dict[str, Any]]:
        """Chunks still owed when the upstream stream ends."""
        return []

    def final_usage(self, messages: Any) -> Usage:
        """The upstream's usage; or, when it never reported one (the client left early), an
        estimate from the prompt's and the deltas' characters, marked as such."""
        if self.usage is not None:
            return self.usage
        return Usage(
            uncached_input=estimate_tokens(prompt_chars(messages)),
            output=estimate_tokens(self.delta_chars, self.delta_count),
            estimated=True,
        )

    def count_delta(self, delta: Any) -> None:
        if not isinstance(delta, dict):
            return
        for key in ("content", "reasoning_content", "refusal"):
            value = delta.get(key)
            if isinstance(value, str) and value:
                self.delta_chars += len(value)
                self.delta_count += 1
        for call in delta.get("tool_calls") or ():
            arguments = (
                (call.get("function") or {}).get("arguments") if isinstance(call, dict) else None
            )
            if isinstance(arguments, str) and arguments:
                self.delta_chars += len(arguments)
                self.delta_count += 1


class ProviderAdapter:
    provider: str = ""

    def chat_request(
        self, body: dict[str, Any], card: Card, upstream: Upstream, *, stream: bool
    ) -> UpstreamRequest:
        raise NotImplementedError

    def chat_response(
        self, payload: bytes, card: Card, body: dict[str, Any]
    ) -> tuple[dict[str, Any], Usage]:
        """The upstream's answer to `body` (the client's request) as a chat.completion."""
        raise NotImplementedError

    def chat_stream(self, card: Card, body: dict[str, Any]) -> StreamTranslator:
        raise NotImplementedError

    def embeddings_request(
        self, body: dict[str, Any], card: Card, upstream: Upstream
    ) -> UpstreamRequest:
        raise InvalidRequest(
            f"{card.title} is served by {card.provider}, which has no embeddings endpoint here.",
            param="model",
        )

    def embeddings_response(
        self, payload: bytes, card: Card, body: dict[str, Any]
    ) -> tuple[dict[str, Any], Usage]:
        raise NotImplementedError

    def models_request(self, upstream: Upstream) -> UpstreamRequest:
        """The provider's model list: the cheapest call that proves a credential works."""
        raise NotImplementedError

    def rejects_credential(self, status: int, payload: bytes) -> bool:
        """A 4xx that says our credential is bad (fail over) though its status says otherwise."""
        return False

    def client_error(self, status: int, payload: bytes, card: Card) -> GatewayError:
        """An upstream 4xx about the request itself, as the gateway's error."""
        message = upstream_message(payload)
        if status == 413:
            return PayloadTooLarge(f"{card.provider} says the request is too large: {message}")
        if status == 404:
            return UpstreamError(
                f"{card.provider} does not serve '{card.upstream_id}' ({card.title}): {message}",
                code="upstream_model_not_found",
            )
        return InvalidRequest(f"{card.provider} rejected the request: {message}", param=None)
