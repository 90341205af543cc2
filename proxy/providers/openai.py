"""OpenAI and OpenAI-compatible servers: the gateway's own wire format, passed through."""

import re
from dataclasses import replace
from typing import Any

import orjson

from billing.usage import Usage, usage_from_openai
from proxy.gateway.errors import GatewayError, InvalidRequest, UpstreamError
from proxy.gateway.routing import Card, Upstream
from proxy.gateway.sse import Event
from proxy.providers.base import (
    ProviderAdapter,
    StreamTranslator,
    get_headers,
    json_headers,
    upstream_url,
)
from proxy.providers.priced import check_openai_chat_search, check_service_tier
from proxy.upstream.request import UpstreamRequest
from proxy.upstream.wording import stream_failure

# A field's name or an error's code as OpenAI writes them (messages[0].content, invalid_value);
# anything else an upstream puts there is not passed on.
_IDENTIFIER = re.compile(r"[A-Za-z_][\w.\[\]-]{0,99}")


def _identifier(value: Any) -> str | None:
    return value if isinstance(value, str) and _IDENTIFIER.fullmatch(value) else None


def parse_json_object(payload: bytes, provider: str) -> dict[str, Any]:
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"{provider} sent a response that is not JSON.") from exc
    if not isinstance(data, dict):
        raise UpstreamError(f"{provider} sent a response that is not a JSON object.")
    return data


def priced_usage_of(usage: Usage, service_tier: Any, body: dict[str, Any]) -> Usage:
    """The tier OpenAI says it used, and its web search: OpenAI's usage does not count the
    search, and a search model searches once for every request with web_search_options."""
    return replace(
        usage,
        service_tier=service_tier if isinstance(service_tier, str) else None,
        server_tools={"web_search": 1} if body.get("web_search_options") is not None else {},
    )


class OpenAIStream(StreamTranslator):
    def __init__(
        self, card: Card, body: dict[str, Any] | None = None, *, tiers: bool = True
    ) -> None:
        super().__init__(card)
        self.body = body or {}
        self.tiers = tiers  # whether the upstream's service_tier says what was billed
        self.service_tier: Any = None

    def feed(self, event: Event) -> list[dict[str, Any]]:
        data = event.data
        if data == b"[DONE]":
            self.done = True
            return []
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(chunk, dict):
            return []
        if "error" in chunk and "choices" not in chunk:
            raise stream_failure(self.card.provider, chunk["error"])
        if self.tiers:
            self.service_tier = chunk.get("service_tier", self.service_tier)
        usage = chunk.pop("usage", None)
        if usage and (parsed := usage_from_openai(usage)) is not None:
            self.usage = priced_usage_of(parsed, self.service_tier, self.body)
        choices = chunk.get("choices")
        if not self.response_id:
            self.response_id = str(chunk.get("id", ""))
            created = chunk.get("created")
            self.created = created if isinstance(created, int) else 0
        if not choices:
            return []  # the usage chunk: the gateway sends its own, priced, if asked
        for choice in choices:
            if isinstance(choice, dict):
                self.count_delta(choice.get("delta"))
                if choice.get("finish_reason"):
                    self.finish_reason = choice["finish_reason"]
        chunk["model"] = self.card.title
        return [chunk]


class OpenAIAdapter(ProviderAdapter):
    provider = "openai"
    # The path under the credential's base URL (which for OpenAI includes /v1).
    chat_path = "/chat/completions"
    embeddings_path = "/embeddings"
    models_path = "/models"
    supports_developer_role = True
    service_tiers = True  # the answer's service_tier is the tier billed

    def auth_header(self, upstream: Upstream) -> tuple[bytes, bytes]:
        return (b"authorization", b"Bearer " + upstream.api_key.encode())

    def models_request(self, upstream: Upstream) -> UpstreamRequest:
        return UpstreamRequest(
            "GET",
            upstream_url(upstream.base_url, self.models_path),
            get_headers(self.auth_header(upstream)),
            b"",
        )

    def translate_chat_body(
        self, body: dict[str, Any], card: Card, *, stream: bool
    ) -> dict[str, Any]:
        check_service_tier(body, card, forwarded=True)
        check_openai_chat_search(body, card)
        out = dict(body)
        out["model"] = card.upstream_id
        if stream:
            # Always ask for usage; the client sees the usage chunk only if it asked.
            options = body.get("stream_options")
            out["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        if card.supports_reasoning and "max_tokens" in out and "max_completion_tokens" not in out:
            # OpenAI's reasoning models refuse max_tokens; this is its documented successor.
            out["max_completion_tokens"] = out.pop("max_tokens")
        out["messages"] = without_cache_control(out["messages"])
        if not self.supports_developer_role:
            out["messages"] = developer_as_system(out["messages"])
        return out

    def chat_request(
        self, body: dict[str, Any], card: Card, upstream: Upstream, *, stream: bool
    ) -> UpstreamRequest:
        return UpstreamRequest(
            "POST",
            upstream_url(upstream.base_url, self.chat_path),
            json_headers(self.auth_header(upstream), stream=stream),
            orjson.dumps(self.translate_chat_body(body, card, stream=stream)),
        )

    def chat_response(
        self, payload: bytes, card: Card, body: dict[str, Any]
    ) -> tuple[dict[str, Any], Usage]:
        data = parse_json_object(payload, card.provider)
        usage = usage_from_openai(data.get("usage"))
        if usage is None:
            raise UpstreamError(f"{card.provider} sent no usage; the request cannot be priced.")
        data["model"] = card.title
        tier = data.get("service_tier") if self.service_tiers else None
        return data, priced_usage_of(usage, tier, body)

    def chat_stream(self, card: Card, body: dict[str, Any]) -> StreamTranslator:
        return OpenAIStream(card, body, tiers=self.service_tiers)

    def translate_embeddings_body(self, body: dict[str, Any], card: Card) -> dict[str, Any]:
        return {**body, "model": card.upstream_id}

    def embeddings_request(
        self, body: dict[str, Any], card: Card, upstream: Upstream
    ) -> UpstreamRequest:
        return UpstreamRequest(
            "POST",
            upstream_url(upstream.base_url, self.embeddings_path),
            json_headers(self.auth_header(upstream), stream=False),
            orjson.dumps(self.translate_embeddings_body(body, card)),
        )

    def embeddings_response(
        self, payload: bytes, card: Card, body: dict[str, Any]
    ) -> tuple[dict[str, Any], Usage]:
        data = parse_json_object(payload, card.provider)
        raw = data.get("usage")
        if not isinstance(raw, dict):
            raise UpstreamError(f"{card.provider} sent no usage; the request cannot be priced.")
        tokens = raw.get("prompt_tokens", raw.get("total_tokens", 0))
        data["model"] = card.title
        return data, Usage(uncached_input=tokens if isinstance(tokens, int) else 0)

    def client_error(self, status: int, payload: bytes, card: Card) -> GatewayError:
        error = super().client_error(status, payload, card)
        if isinstance(error, InvalidRequest):
            try:
                detail = orjson.loads(payload).get("error") or {}
            except (orjson.JSONDecodeError, AttributeError):
                detail = {}
            if isinstance(detail, dict):
                error.param = _identifier(detail.get("param"))
                error.code = _identifier(detail.get("code")) or error.code
        return error


class OpenAICompatibleAdapter(OpenAIAdapter):
    """vLLM, Ollama, LM Studio, llama.cpp, hosted OpenAI clones: same wire, fewer features."""

    provider = "openai-compatible"
    supports_developer_role = False


def developer_as_system(messages: Any) -> Any:
    if not isinstance(messages, list) or not any(
        isinstance(message, dict) and message.get("role") == "developer" for message in messages
    ):
        return messages
    return [
        {**message, "role": "system"}
        if isinstance(message, dict) and message.get("role") == "developer"
        else message
        for message in messages
    ]


def _marked(item: Any) -> bool:
    return isinstance(item, dict) and "cache_control" in item


def without_cache_control(messages: Any) -> Any:
    """Anthropic's cache_control marks removed: other providers refuse them as unknown fields.

    The list is copied only when a mark is present.
    """
    if not isinstance(messages, list) or not any(
        _marked(message)
        or (
            isinstance(message, dict)
            and isinstance(message.get("content"), list)
            and any(_marked(part) for part in message["content"])
        )
        for message in messages
    ):
        return messages
    cleaned = []
    for message in messages:
        if isinstance(message, dict):
            message = {key: value for key, value in message.items() if key != "cache_control"}
            if isinstance(message.get("content"), list):
                message["content"] = [
                    {key: value for key, value in part.items() if key != "cache_control"}
                    if _marked(part)
                    else part
                    for part in message["content"]
                ]
        cleaned.append(message)
    return cleaned
