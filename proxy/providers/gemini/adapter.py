"""Google Gemini (generateContent, streamGenerateContent?alt=sse, embedContent and
batchEmbedContents) behind the OpenAI-shaped API.

Usage buckets: promptTokenCount includes the cached tokens (cachedContentTokenCount), which are
taken out of it; toolUsePromptTokenCount is input too; candidatesTokenCount excludes the
thinking (thoughtsTokenCount), which is billed at the output price as the reasoning bucket.
Request translation: gemini_request.py.
"""

import base64
import struct
import time
import uuid
from dataclasses import replace
from typing import Any

import orjson

from billing.usage import Usage, estimate_tokens
from proxy.gateway.errors import InvalidRequest, UpstreamError
from proxy.gateway.routing import Card, Upstream
from proxy.gateway.sse import Event
from proxy.providers.base import (
    ProviderAdapter,
    StreamTranslator,
    get_headers,
    json_headers,
    upstream_url,
)
from proxy.providers.gemini.grounding import (
    grounded_citations,
    grounded_searches,
    grounding_of,
    indexed,
)
from proxy.providers.gemini.request import gemini_body
from proxy.providers.openai import parse_json_object
from proxy.providers.priced import GROUNDING_QUERIES
from proxy.providers.translate import token_count
from proxy.upstream.request import UpstreamRequest
from proxy.upstream.wording import stream_failure

FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "LANGUAGE",
    }
)
EMBEDDING_FIELDS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})


def grounding_queries(candidates: Any) -> dict[int, int]:
    """How many Google Search queries Gemini ran for each candidate's answer
    (groundingMetadata.webSearchQueries; a stream repeats or completes them, never splits)."""
    counts: dict[int, int] = {}
    for position, candidate in enumerate(candidates if isinstance(candidates, list) else ()):
        metadata = candidate.get("groundingMetadata") if isinstance(candidate, dict) else None
        found = metadata.get("webSearchQueries") if isinstance(metadata, dict) else None
        if isinstance(found, list) and found:
            index = candidate.get("index", position)
            counts[index if isinstance(index, int) else position] = len(found)
    return counts


def with_grounding(usage: Usage, queries: dict[int, int]) -> Usage:
    """Grounding's calls: Gemini 3 bills each search query, Gemini 2.5 each grounded prompt;
    both are counted, and the card prices the one its model is billed by. At most
    GROUNDING_QUERIES queries per candidate are charged: what the request's worst case held
    (Gemini takes no limit on them)."""
    if not queries:
        return usage
    charged = sum(min(count, GROUNDING_QUERIES) for count in queries.values())
    tools = {"google_search": charged, "grounded_prompt": 1}
    return replace(usage, server_tools=tools)


def usage_from_gemini(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = token_count(raw.get("promptTokenCount"))
    cached = min(token_count(raw.get("cachedContentTokenCount")), prompt)
    return Usage(
        uncached_input=prompt - cached + token_count(raw.get("toolUsePromptTokenCount")),
        cache_read=cached,
        output=token_count(raw.get("candidatesTokenCount")),
        reasoning=token_count(raw.get("thoughtsTokenCount")),
    )


def finish_reason(reason: Any, has_calls: bool) -> str:
    if reason == "MAX_TOKENS":
        return "length"
    if reason in FILTERED:
        return "content_filter"
    return "tool_calls" if has_calls else "stop"


def tool_call(part: dict[str, Any], index: int | None = None) -> dict[str, Any]:
    """A functionCall part as an OpenAI tool call; its thought signature rides along in
    extra_content.google.thought_signature, where Google's own OpenAI-compatible API puts it."""
    call = part["functionCall"]
    call_id = call.get("id")
    out: dict[str, Any] = {
        "id": call_id if isinstance(call_id, str) and call_id else f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {
            "name": call.get("name"),
            "arguments": orjson.dumps(call.get("args") or {}).decode(),
        },
    }
    if index is not None:
        out = {"index": index, **out}
    if isinstance(part.get("thoughtSignature"), str):
        out["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
    return out


def _message(candidate: dict[str, Any]) -> dict[str, Any]:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("functionCall"), dict):
            calls.append(tool_call(part))
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else texts).append(part["text"])
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = calls
    metadata = grounding_of(candidate)
    if metadata is not None:
        annotations = grounded_citations(metadata, message["content"] or "")
        if annotations:
            message["annotations"] = annotations
        searches = grounded_searches(metadata)
        if searches:
            message["web_search_calls"] = searches
    return message


class GeminiStream(StreamTranslator):
    def __init__(self, card: Card, choices: int) -> None:
        super().__init__(card)
        self.choices = choices
        self.started: set[int] = set()
        self.finished: set[int] = set()
        self.calls: dict[int, int] = {}  # candidate index -> tool calls so far
        self.queries: dict[int, int] = {}  # candidate index -> Google Search queries run
        self.texts: dict[int, list[str]] = {}  # candidate index -> its content so far
        self.grounding: dict[int, dict[str, Any]] = {}  # candidate index -> its latest metadata

    def feed(self, event: Event) -> list[dict[str, Any]]:
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(data, dict):
            return []
        if isinstance(data.get("error"), dict):
            raise stream_failure(self.card.provider, data["error"])
        self.queries.update(grounding_queries(data.get("candidates")))
        usage = usage_from_gemini(data.get("usageMetadata"))
        if usage is not None:
            self.usage = usage  # each chunk's usageMetadata is the running total
        if self.usage is not None:
            self.usage = with_grounding(self.usage, self.queries)
        if not self.response_id:
            self.response_id = str(data.get("responseId") or f"gen-{uuid.uuid4().hex}")
            self.created = int(time.time())
        chunks: list[dict[str, Any]] = []
        candidates = data.get("candidates")
        if not candidates and (data.get("promptFeedback") or {}).get("blockReason"):
            self.done = True  # the prompt itself was blocked: no candidate will come
            return [self._chunk(0, {"role": "assistant", "content": ""}, "content_filter")]
        for candidate in candidates or ():
            if isinstance(candidate, dict):
                chunks += self._candidate(candidate)
        return chunks

    def _candidate(self, candidate: dict[str, Any]) -> list[dict[str, Any]]:
        index = candidate.get("index", 0)
        index = index if isinstance(index, int) else 0
        chunks = []
        if index not in self.started:
            self.started.add(index)
            chunks.append(self._chunk(index, {"role": "assistant", "content": ""}))
        for part in (candidate.get("content") or {}).get("parts") or ():
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("functionCall"), dict):
                call_index = self.calls.get(index, 0)
                self.calls[index] = call_index + 1
                chunks.append(self._chunk(index, {"tool_calls": [tool_call(part, call_index)]}))
            elif isinstance(part.get("text"), str) and part["text"]:
                key = "reasoning_content" if part.get("thought") else "content"
                if key == "content":
                    self.texts.setdefault(index, []).append(part["text"])
                chunks.append(self._chunk(index, {key: part["text"]}))
        metadata = grounding_of(candidate)
        if metadata is not None:
            self.grounding[index] = metadata  # Gemini sends it whole, with the last chunk
        reason = candidate.get("finishReason")
        if reason:
            chunks += self._grounded(index)
            finish = finish_reason(reason, bool(self.calls.get(index)))
            self.finish_reason = finish
            chunks.append(self._chunk(index, {}, finish))
            self.finished.add(index)
            self.done = len(self.finished) >= self.choices
        return chunks

    def _grounded(self, index: int) -> list[dict[str, Any]]:
        """A finished candidate's sources and searches, each once."""
        metadata = self.grounding.pop(index, None)
        if metadata is None:
            return []
        chunks = []
        cited = grounded_citations(metadata, "".join(self.texts.get(index, ())))
        if cited:
            chunks.append(self._chunk(index, {"annotations": indexed(cited)}))
        searches = grounded_searches(metadata)
        if searches:
            chunks.append(self._chunk(index, {"web_search_calls": indexed(searches)}))
        return chunks

    def _chunk(
        self, index: int, delta: dict[str, Any], finish: str | None = None
    ) -> dict[str, Any]:
        self.count_delta(delta)
        return {
            "id": self.response_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.card.title,
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }


class GeminiAdapter(ProviderAdapter):
    provider = "gemini"

    def _headers(self, upstream: Upstream, *, stream: bool) -> list[tuple[bytes, bytes]]:
        return json_headers((b"x-goog-api-key", upstream.api_key.encode()), stream=stream)

    def models_request(self, upstream: Upstream) -> UpstreamRequest:
        return UpstreamRequest(
            "GET",
            upstream_url(upstream.base_url, "/v1beta/models"),
            get_headers((b"x-goog-api-key", upstream.api_key.encode())),
            b"",
        )

    def chat_request(
        self, body: dict[str, Any], card: Card, upstream: Upstream, *, stream: bool
    ) -> UpstreamRequest:
        method = ":streamGenerateContent?alt=sse" if stream else ":generateContent"
        return UpstreamRequest(
            "POST",
            upstream_url(upstream.base_url, f"/v1beta/models/{card.upstream_id}{method}"),
            self._headers(upstream, stream=stream),
            orjson.dumps(gemini_body(body, card)),
        )

    def chat_response(
        self, payload: bytes, card: Card, body: dict[str, Any]
    ) -> tuple[dict[str, Any], Usage]:
        data = parse_json_object(payload, card.provider)
        usage = usage_from_gemini(data.get("usageMetadata"))
        if usage is None:
            raise UpstreamError(f"{card.provider} sent no usage; the request cannot be priced.")
        usage = with_grounding(usage, grounding_queries(data.get("candidates")))
        choices = []
        for position, candidate in enumerate(data.get("candidates") or ()):
            message = _message(candidate)
            index = candidate.get("index", position)
            reason = finish_reason(candidate.get("finishReason"), "tool_calls" in message)
            choices.append(
                {"index": index, "message": message, "logprobs": None, "finish_reason": reason}
            )
        if not choices:  # the prompt was blocked before any candidate was made
            empty = {"role": "assistant", "content": "", "refusal": None}
            choices.append(
                {"index": 0, "message": empty, "logprobs": None, "finish_reason": "content_filter"}
            )
        completion = {
            "id": data.get("responseId") or f"gen-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": card.title,
            "choices": choices,
        }
        return completion, usage

    def chat_stream(self, card: Card, body: dict[str, Any]) -> StreamTranslator:
        return GeminiStream(card, body.get("n") or 1)

    # --- embeddings -----------------------------------------------------------------------
    def embeddings_request(
        self, body: dict[str, Any], card: Card, upstream: Upstream
    ) -> UpstreamRequest:
        for field in body:
            if field not in EMBEDDING_FIELDS:
                raise InvalidRequest(
                    f"Unrecognized request argument supplied: {field}",
                    param=field,
                    code="unknown_parameter",
                )
        texts = _embedding_texts(body["input"])
        extra: dict[str, Any] = {}
        if body.get("dimensions") is not None:
            extra["outputDimensionality"] = body["dimensions"]
        model = f"models/{card.upstream_id}"
        if isinstance(body["input"], str):
            path, payload = ":embedContent", {"content": {"parts": [{"text": texts[0]}]}, **extra}
        else:
            path = ":batchEmbedContents"
            payload = {
                "requests": [
                    {"model": model, "content": {"parts": [{"text": text}]}, **extra}
                    for text in texts
                ]
            }
        return UpstreamRequest(
            "POST",
            upstream_url(upstream.base_url, f"/v1beta/{model}{path}"),
            self._headers(upstream, stream=False),
            orjson.dumps(payload),
        )

    def embeddings_response(
        self, payload: bytes, card: Card, body: dict[str, Any]
    ) -> tuple[dict[str, Any], Usage]:
        data = parse_json_object(payload, card.provider)
        vectors = data.get("embeddings")
        if vectors is None and isinstance(data.get("embedding"), dict):
            vectors = [data["embedding"]]
        if not isinstance(vectors, list):
            raise UpstreamError(f"{card.provider} sent no embeddings.")
        as_base64 = body.get("encoding_format") == "base64"
        items = []
        for index, vector in enumerate(vectors):
            values = vector.get("values") if isinstance(vector, dict) else None
            if not isinstance(values, list):
                raise UpstreamError(f"{card.provider} sent an embedding without values.")
            encoded: Any = values
            if as_base64:  # OpenAI's encoding: little-endian float32, base64
                encoded = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
            items.append({"object": "embedding", "index": index, "embedding": encoded})
        usage = usage_from_gemini(data.get("usageMetadata"))
        if usage is None:
            # Gemini's embedding answers may carry no token count: estimate, and say so.
            chars = sum(len(text) for text in _embedding_texts(body["input"]))
            usage = Usage(uncached_input=estimate_tokens(chars), estimated=True)
        return {"object": "list", "data": items, "model": card.title}, usage

    # --- errors ---------------------------------------------------------------------------
    def rejects_credential(self, status: int, payload: bytes) -> bool:
        # Gemini answers a bad or expired key with 400 INVALID_ARGUMENT, reason API_KEY_*.
        return status == 400 and b'"API_KEY_' in payload


def _embedding_texts(value: Any) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not all(isinstance(text, str) and text for text in texts):
        raise InvalidRequest(
            "'input' must be a string or an array of non-empty strings for Gemini embedding "
            "models (token arrays are an OpenAI feature).",
            param="input",
            code="invalid_value",
        )
    return list(texts)
