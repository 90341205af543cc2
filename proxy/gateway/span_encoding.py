"""Usage events written straight into OTLP's protobuf wire format (proxy/gateway/spans.py
sends them).

The SDK's own way (a Span object per span, its attributes checked one by one, then each span
encoded through the generated protobuf classes) cost about half of what the rest of a request
does (bench/README.md, "Traces"); here the spans are written from the event, and the parts that
many requests share (a card's names, an outcome, an attempt) are encoded once and kept.

Attributes follow OpenTelemetry's GenAI semantic conventions (gen_ai.*) and HTTP's
(http.response.status_code, error.type), with the gateway's identifiers under tokenbyte.*.
Like the access log, a span carries identifiers, the outcome and the counts: never a key, a
prompt, an answer or an upstream credential's secret (its id only).
"""

import os
import random
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import sampling

from billing.events import UpstreamAttempt, UsageEvent
from proxy.gateway.http import Headers

SCOPE_NAME = "tokenbyte.gateway"
# gen_ai.operation.name by endpoint (count_tokens is no operation the conventions name).
OPERATIONS = {
    "chat.completions": "chat",
    "messages": "chat",
    "responses": "chat",
    "embeddings": "embeddings",
    "messages.count_tokens": "count_tokens",
}
ROUTES = {
    "chat.completions": "/v1/chat/completions",
    "messages": "/v1/messages",
    "responses": "/v1/responses",
    "embeddings": "/v1/embeddings",
    "messages.count_tokens": "/v1/messages/count_tokens",
}
# gen_ai.provider.name: the conventions' well-known value where there is one for ours.
PROVIDERS = {"gemini": "gcp.gemini", "mistral": "mistral_ai"}

# Entries of each cache of encoded parts (cards, outcomes, attempts): emptied when full.
_CACHE_LIMIT = 4096

# --- protobuf's wire format (opentelemetry/proto/trace/v1/trace.proto) ---------------------------
SERVER, CLIENT = 2, 3  # Span.SpanKind
STATUS_ERROR = 2  # Status.StatusCode
# Span.flags: the W3C trace flags (bit 0: sampled), and whether the parent is remote.
FLAG_SAMPLED, FLAG_HAS_IS_REMOTE, FLAG_IS_REMOTE = 0x01, 0x100, 0x200
_fixed64 = struct.Struct("<Q").pack
_fixed32 = struct.Struct("<I").pack
_double = struct.Struct("<d").pack


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    value &= 0xFFFF_FFFF_FFFF_FFFF  # int64: a negative number is ten bytes
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag, the length, the bytes."""
    return tag + _varint(len(payload)) + payload


def _any(value: object) -> bytes:
    """An AnyValue's body."""
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _double(value)
    if isinstance(value, Sequence):  # ArrayValue (resource attributes may hold lists)
        return _field(b"\x2a", b"".join(_field(b"\x0a", _any(item)) for item in value))
    return _field(b"\x0a", str(value).encode())


def _attribute(tag: bytes, key: str, value: object) -> bytes:
    """A KeyValue as the field `tag` of its message (a span's, 0x4a; a resource's, 0x0a)."""
    return _field(tag, _field(b"\x0a", key.encode()) + _field(b"\x12", _any(value)))


def _key(key: str) -> bytes:
    return _field(b"\x0a", key.encode())


def _text(key: bytes, value: str) -> bytes:
    """A string attribute of a span (`key`: its encoded KeyValue key)."""
    data = value.encode()
    size = len(data)
    if size < 0x70 and len(key) + size < 0x7B:  # every length one byte: the common case
        return b"".join(
            (b"\x4a", bytes((len(key) + 4 + size,)), key, bytes((0x12, size + 2, 0x0A, size)), data)
        )
    any_value = b"\x0a" + _varint(size) + data
    return _field(b"\x4a", key + b"\x12" + _varint(len(any_value)) + any_value)


class _Integer:
    """An integer attribute of a span, its key and framing encoded once per varint length."""

    __slots__ = ("heads",)

    def __init__(self, key: bytes) -> None:
        self.heads = [b""] + [
            b"\x4a" + _varint(len(key) + 3 + size) + key + bytes((0x12, size + 1, 0x18))
            for size in range(1, 11)
        ]

    def __call__(self, value: int) -> bytes:
        encoded = _varint(value)
        return self.heads[len(encoded)] + encoded


def _real(key: bytes, value: float) -> bytes:
    body = key + b"\x12\x09\x21" + _double(value)
    return b"\x4a" + _varint(len(body)) + body


# A span's attributes the events fill in, their KeyValue keys encoded once.
_STATUS_CODE = _Integer(_key("http.response.status_code"))
_REQUEST_ID = _key("tokenbyte.request_id")
_EVENT_ID = _key("tokenbyte.event_id")
_ATTEMPTS = _Integer(_key("tokenbyte.attempts"))
_COST = _key("tokenbyte.cost")
_RESPONSE_ID = _key("gen_ai.response.id")
_INPUT_TOKENS = _Integer(_key("gen_ai.usage.input_tokens"))
_OUTPUT_TOKENS = _Integer(_key("gen_ai.usage.output_tokens"))
_CACHE_READ = _Integer(_key("gen_ai.usage.cache_read.input_tokens"))
_CACHE_CREATION = _Integer(_key("gen_ai.usage.cache_creation.input_tokens"))
_REASONING = _Integer(_key("gen_ai.usage.reasoning.output_tokens"))
_ERROR_TYPE = _key("error.type")
_KEY_ID = _Integer(_key("tokenbyte.key_id"))
_ACCOUNT_ID = _Integer(_key("tokenbyte.account_id"))
_CREDENTIAL_ID = _Integer(_key("tokenbyte.credential_id"))
_TTFB = _key("tokenbyte.ttfb_ms")
_UPSTREAM_REQUEST_ID = _key("tokenbyte.upstream_request_id")
_ATTEMPT = _Integer(_key("tokenbyte.attempt"))
# Span.flags (field 16, fixed32), by where the span's parent is.
_ROOT = b"\x85\x01" + _fixed32(FLAG_SAMPLED | FLAG_HAS_IS_REMOTE)
_REMOTE_CHILD = b"\x85\x01" + _fixed32(FLAG_SAMPLED | FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE)
_LOCAL_CHILD = _ROOT
_DISCONNECTED = _attribute(b"\x4a", "tokenbyte.client_disconnected", True)
_STREAMED = _attribute(b"\x4a", "tokenbyte.stream", True)
_NOT_STREAMED = _attribute(b"\x4a", "tokenbyte.stream", False)


def _error_status(code: str | None) -> bytes:
    return _field(b"\x7a", (_field(b"\x12", code.encode()) if code else b"") + b"\x18\x02")


class _Static:
    """What every span of one endpoint and card shares, encoded once."""

    __slots__ = ("attempt", "attempt_name", "request", "request_name")

    def __init__(self, event: UsageEvent) -> None:
        operation = OPERATIONS.get(event.endpoint, event.endpoint)
        provider = event.provider
        card = provider is not None  # otherwise `model` is what the client named, if anything
        name = f"{operation} {event.model}" if card else operation
        self.request_name = _field(b"\x2a", name.encode())
        request: list[tuple[str, object]] = [
            ("gen_ai.operation.name", operation),
            ("gen_ai.request.model", event.model),
            ("http.request.method", "POST"),
            ("tokenbyte.endpoint", event.endpoint),
        ]
        attempt: list[tuple[str, object]] = [("gen_ai.operation.name", operation)]
        route = ROUTES.get(event.endpoint)
        if route is not None:
            request.append(("http.route", route))
        if provider is not None:
            semantic = PROVIDERS.get(provider, provider)
            shared = [("gen_ai.provider.name", semantic), ("gen_ai.system", semantic)]
            request += [*shared, ("tokenbyte.provider", provider)]
            attempt += shared
        if event.upstream_model is not None:
            request.append(("gen_ai.response.model", event.upstream_model))
            attempt.append(("gen_ai.request.model", event.upstream_model))
        self.request = b"".join(_attribute(b"\x4a", key, value) for key, value in request)
        self.attempt = b"".join(_attribute(b"\x4a", key, value) for key, value in attempt)
        self.attempt_name = _field(b"\x2a", f"{operation} {event.upstream_model}".encode())


def parse_traceparent(headers: Headers | None) -> tuple[bytes, bytes, int, str] | None:
    """The client's W3C trace context: (trace id, parent span id, trace flags, tracestate)."""
    if not headers:
        return None
    parent = state = None
    for name, value in headers:
        if name == b"traceparent":
            parent = value
        elif name == b"tracestate":
            state = value if state is None else state + b"," + value
    if parent is None:
        return None
    parts = parent.strip().split(b"-")
    # version-traceid-parentid-flags; a later version may add fields, ff is invalid.
    if len(parts) < 4 or parts[0] == b"ff" or (parts[0] == b"00" and len(parts) != 4):
        return None
    version, trace_id, span_id, flags = parts[:4]
    if (len(version), len(trace_id), len(span_id), len(flags)) != (2, 32, 16, 2):
        return None
    try:
        if trace_id != trace_id.lower() or span_id != span_id.lower():
            return None
        parsed = (bytes.fromhex(trace_id.decode()), bytes.fromhex(span_id.decode()))
        trace_flags = int(flags, 16)
    except ValueError:
        return None
    if len(parsed[0]) != 16 or len(parsed[1]) != 8 or not any(parsed[0]) or not any(parsed[1]):
        return None
    return parsed[0], parsed[1], trace_flags, (state or b"").decode("latin-1").strip()


class SpanEncoder:
    """Usage events into an ExportTraceServiceRequest's bytes."""

    def __init__(self, resource: Resource, sampler: sampling.Sampler) -> None:
        attributes = b"".join(
            _attribute(b"\x0a", key, value) for key, value in resource.attributes.items()
        )
        self._resource = _field(b"\x0a", attributes)  # ResourceSpans.resource
        version = os.environ.get("TOKENBYTE_VERSION", "")
        scope = _field(b"\x0a", SCOPE_NAME.encode()) + (
            _field(b"\x12", version.encode()) if version else b""
        )
        self._scope = _field(b"\x0a", scope)  # ScopeSpans.scope
        self._sampler = sampler
        self._default = sampler is sampling.DEFAULT_ON  # parent-based, always on: decided here
        self._static: dict[tuple[str, str, str | None, str | None], _Static] = {}
        self._outcomes: dict[tuple[Any, ...], bytes] = {}
        self._attempts: dict[tuple[Any, ...], bytes] = {}
        self._random = random.Random()  # noqa: S311  # span ids need be unique, not secret (as the SDK's)

    def encode(self, batch: Iterable[tuple[UsageEvent, Headers | None]]) -> tuple[bytes, int]:
        """The request body, and how many spans it holds."""
        spans: list[bytes] = []
        for event, headers in batch:
            self._spans(event, parse_traceparent(headers), spans)
        if not spans:
            return b"", 0
        scope_spans = _field(b"\x12", self._scope + b"".join(spans))
        return _field(b"\x0a", self._resource + scope_spans), len(spans)

    def _sampled(
        self, event: UsageEvent, parent: tuple[bytes, bytes, int, str] | None, trace_id: bytes
    ) -> bool:
        if self._default:
            return parent is None or bool(parent[2] & FLAG_SAMPLED)
        context = None
        if parent is not None:
            remote = trace.SpanContext(
                int.from_bytes(parent[0]),
                int.from_bytes(parent[1]),
                is_remote=True,
                trace_flags=trace.TraceFlags(parent[2] & 0xFF),
            )
            context = trace.set_span_in_context(trace.NonRecordingSpan(remote))
        result = self._sampler.should_sample(
            context, int.from_bytes(trace_id), event.endpoint, trace.SpanKind.SERVER
        )
        return result.decision is sampling.Decision.RECORD_AND_SAMPLE

    def _static_for(self, event: UsageEvent) -> _Static:
        if event.provider is None:  # `model` is whatever the client named: not kept
            return _Static(event)
        key = (event.endpoint, event.model, event.provider, event.upstream_model)
        static = self._static.get(key)
        if static is None:
            if len(self._static) >= _CACHE_LIMIT:
                self._static.clear()
            static = self._static[key] = _Static(event)
        return static

    def _spans(
        self, event: UsageEvent, parent: tuple[bytes, bytes, int, str] | None, out: list[bytes]
    ) -> None:
        bits = self._random.getrandbits
        trace_id = parent[0] if parent is not None else bits(128).to_bytes(16)
        if not self._sampled(event, parent, trace_id):
            return
        static = self._static_for(event)
        span_id = bits(64).to_bytes(8)
        start = int(event.started_at * 1e9)
        end = start + int(event.latency_ms * 1e6)
        head = b"\x0a\x10" + trace_id
        if parent is not None:
            context = _field(b"\x1a", parent[3].encode()) if parent[3] else b""
            context += b"\x22\x08" + parent[1]
            flags = _REMOTE_CHILD
        else:
            context, flags = b"", _ROOT
        usage = event.usage
        parts = [
            head,
            b"\x12\x08",
            span_id,
            context,
            static.request_name,
            b"\x30\x02\x39",
            _fixed64(start),
            b"\x41",
            _fixed64(end),
            static.request,
            self._outcome(event),
            _text(_REQUEST_ID, event.request_id),
            _text(_EVENT_ID, event.event_id),
            _text(_COST, str(event.cost)),
        ]
        tokens_in, tokens_out = usage.prompt_tokens, usage.completion_tokens
        if tokens_in or tokens_out:
            parts += (_INPUT_TOKENS(tokens_in), _OUTPUT_TOKENS(tokens_out))
            if usage.cache_read:
                parts.append(_CACHE_READ(usage.cache_read))
            if usage.cache_write or usage.cache_write_1h:
                parts.append(_CACHE_CREATION(usage.cache_write + usage.cache_write_1h))
            if usage.reasoning:
                parts.append(_REASONING(usage.reasoning))
        if event.response_id is not None:
            parts.append(_text(_RESPONSE_ID, event.response_id))
        if event.ttfb_ms is not None:
            parts.append(_real(_TTFB, event.ttfb_ms))
        if event.upstream_request_id is not None:
            parts.append(_text(_UPSTREAM_REQUEST_ID, event.upstream_request_id))
        parts.append(flags)
        out.append(_field(b"\x12", b"".join(parts)))  # ScopeSpans.spans
        inside = b"\x22\x08" + span_id
        for number, attempt in enumerate(event.attempt_log, 1):
            began = start + int(attempt.started_ms * 1e6)
            ended = min(began + int(attempt.duration_ms * 1e6), end)
            body = b"".join(
                (
                    head,
                    b"\x12\x08",
                    bits(64).to_bytes(8),
                    inside,
                    static.attempt_name,
                    b"\x30\x03\x39",
                    _fixed64(began),
                    b"\x41",
                    _fixed64(ended),
                    static.attempt,
                    self._attempt(number, attempt),
                    _LOCAL_CHILD,
                )
            )
            out.append(_field(b"\x12", body))

    def _outcome(self, event: UsageEvent) -> bytes:
        """The request span's attributes few requests differ in (and its status), cached."""
        key = (
            event.status,
            event.error_code,
            event.stream,
            event.attempts,
            event.key_id,
            event.account_id,
            event.credential_id,
            event.client_disconnected,
        )
        encoded = self._outcomes.get(key)
        if encoded is None:
            parts = [_STATUS_CODE(event.status), _STREAMED if event.stream else _NOT_STREAMED]
            parts.append(_ATTEMPTS(event.attempts))
            if event.key_id is not None:
                parts.append(_KEY_ID(event.key_id))
            if event.account_id is not None:
                parts.append(_ACCOUNT_ID(event.account_id))
            if event.credential_id is not None:
                parts.append(_CREDENTIAL_ID(event.credential_id))
            if event.client_disconnected:
                parts.append(_DISCONNECTED)
            if event.error_code is not None:
                parts.append(_text(_ERROR_TYPE, event.error_code))
            if event.status >= 500:
                parts.append(_error_status(event.error_code))
            encoded = b"".join(parts)
            if len(self._outcomes) >= _CACHE_LIMIT:
                self._outcomes.clear()
            self._outcomes[key] = encoded
        return encoded

    def _attempt(self, number: int, attempt: UpstreamAttempt) -> bytes:
        """An attempt span's own attributes (and its status), cached."""
        key = (number, attempt.credential_id, attempt.status, attempt.error_code)
        encoded = self._attempts.get(key)
        if encoded is None:
            parts = [_CREDENTIAL_ID(attempt.credential_id), _ATTEMPT(number)]
            if attempt.status is not None:
                parts.append(_STATUS_CODE(attempt.status))
            if attempt.error_code is not None:
                parts += (_text(_ERROR_TYPE, attempt.error_code), _error_status(attempt.error_code))
            encoded = b"".join(parts)
            if len(self._attempts) >= _CACHE_LIMIT:
                self._attempts.clear()
            self._attempts[key] = encoded
        return encoded
