"""What a traced request costs the gateway's CPU (proxy/gateway/spans.py), against the SDK's way.

    .venv/bin/python bench/tracing.py

Pure CPU, on a streamed chat request's usage event with one upstream attempt (two spans): the
request path's part (queueing the event), encoding a batch of 512 into OTLP protobuf, and the
whole of it with the export thread posting to a local sink (this process's CPU time, every
thread, per request). Then the SDK's way for comparison: building the two spans through a
TracerProvider (start_span with attributes and explicit times, end), and encoding them with the
OTLP exporter's encoder when opentelemetry-exporter-otlp-proto-common is installed (it is not a
dependency: `pip install opentelemetry-exporter-otlp-proto-common==1.45.2` for that line).
"""

import os
import subprocess
import sys
import time
import timeit
from decimal import Decimal
from pathlib import Path

BATCH = 512
SINK_PORT = 4399

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenbyte.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-" + "x" * 50)
os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{SINK_PORT}"

import django  # noqa: E402  # after the environment it reads

django.setup()

from opentelemetry.context import Context  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider  # noqa: E402
from opentelemetry.trace import SpanKind, set_span_in_context  # noqa: E402

from billing.events import UpstreamAttempt, UsageEvent  # noqa: E402
from billing.usage import Usage  # noqa: E402
from proxy.gateway.spans import Spans  # noqa: E402
from proxy.gateway.tracing import REQUEST_HEADERS  # noqa: E402

EVENT = UsageEvent(
    event_id="evt_0123456789abcdef0123",
    request_id="req_0123456789abcdef0123456789abcdef",
    endpoint="chat.completions",
    key_id=1,
    account_id=2,
    card_id=3,
    model="GPT-4o",
    provider="openai",
    upstream_model="gpt-4o",
    credential_id=4,
    status=200,
    error_code=None,
    stream=True,
    usage=Usage(uncached_input=12, output=30),
    cost=Decimal("0.000123"),
    started_at=time.time(),
    latency_ms=12.3,
    ttfb_ms=3.2,
    attempts=1,
    response_id="chatcmpl-0123456789",
    attempt_log=(UpstreamAttempt(4, 1.0, 2.0, 200, None),),
)


def best(function: object, number: int) -> float:
    return min(timeit.repeat(function, number=number, repeat=5)) / number  # type: ignore[arg-type]


class Kept(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def sdk_spans(tracer: object) -> None:
    start = int(EVENT.started_at * 1e9)
    span = tracer.start_span(  # type: ignore[attr-defined]
        "chat GPT-4o", kind=SpanKind.SERVER, start_time=start, attributes=ATTRIBUTES
    )
    child = tracer.start_span(  # type: ignore[attr-defined]
        "chat gpt-4o",
        context=set_span_in_context(span),
        kind=SpanKind.CLIENT,
        start_time=start + 1_000_000,
        attributes=ATTEMPT,
    )
    child.end(end_time=start + 3_000_000)
    span.end(end_time=start + 12_300_000)


# The same attributes spans.py writes for EVENT.
ATTRIBUTES = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "GPT-4o",
    "http.request.method": "POST",
    "tokenbyte.endpoint": "chat.completions",
    "http.route": "/v1/chat/completions",
    "gen_ai.provider.name": "openai",
    "gen_ai.system": "openai",
    "tokenbyte.provider": "openai",
    "gen_ai.response.model": "gpt-4o",
    "http.response.status_code": 200,
    "tokenbyte.stream": True,
    "tokenbyte.attempts": 1,
    "tokenbyte.key_id": 1,
    "tokenbyte.account_id": 2,
    "tokenbyte.credential_id": 4,
    "tokenbyte.request_id": EVENT.request_id,
    "tokenbyte.event_id": EVENT.event_id,
    "tokenbyte.cost": "0.000123",
    "gen_ai.usage.input_tokens": 12,
    "gen_ai.usage.output_tokens": 30,
    "gen_ai.response.id": "chatcmpl-0123456789",
    "tokenbyte.ttfb_ms": 3.2,
}
ATTEMPT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o",
    "tokenbyte.credential_id": 4,
    "tokenbyte.attempt": 1,
    "http.response.status_code": 200,
}


def main() -> None:
    sink = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("otlp_sink.py")), str(SINK_PORT)],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    try:
        spans = Spans(REQUEST_HEADERS)
        spans._limit = 10**9  # the request path's part alone, never dropping
        queued = best(lambda: spans.export(EVENT), 100_000)
        print(f"request path (queue the event): {queued * 1e6:.2f} us")
        spans._queue.clear()
        batch = [(EVENT, None)] * BATCH
        encode = best(lambda: spans._encoder.encode(batch), 20) / BATCH
        print(f"encode, per request (2 spans): {encode * 1e6:.2f} us")
        requests = 50_000
        spans._limit, spans._batch = 10**9, BATCH
        cpu = time.process_time()
        for _ in range(requests):
            spans.export(EVENT)
        spans.shutdown()  # sends what is queued
        cpu = time.process_time() - cpu
        print(f"all of it, export thread and posts included: {cpu / requests * 1e6:.1f} us")
    finally:
        sink.terminate()
        sink.wait()

    kept = Kept()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(kept)
    tracer = provider.get_tracer("bench")
    print(f"SDK: build the 2 spans: {best(lambda: sdk_spans(tracer), 5_000) * 1e6:.1f} us")
    try:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import (  # type: ignore[import-not-found]  # optional, see above
            encode_spans,
        )
    except ImportError:
        print("SDK: encode: opentelemetry-exporter-otlp-proto-common is not installed")
        return
    two = kept.spans[:BATCH]
    encoded = best(lambda: encode_spans(two).SerializeToString(), 10) / len(two) * 2
    print(f"SDK: encode, per request (2 spans): {encoded * 1e6:.1f} us")


if __name__ == "__main__":
    main()
