"""OpenTelemetry traces: a gateway process sends each request's span, and a span per upstream
attempt, to an OTLP/HTTP collector (a strict fake here); with no endpoint set, neither the
tracing SDK nor the span builder is ever imported."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from accounts.models import User
from keys.services import key_mint
from keys.validation import KeySpec
from proxy.models import UpstreamCredential
from proxy.services import credential_upsert
from tests.conftest import REPO, free_port, manage_env, subprocess_env
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.server import FakeServer, Scripted

HELLO = [{"role": "user", "content": "Say hello to the collector"}]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SERVER, CLIENT = Span.SpanKind.SPAN_KIND_SERVER, Span.SpanKind.SPAN_KIND_CLIENT
IS_REMOTE = 0x200


class Collector:
    """OTLP/HTTP on loopback: POST /v1/traces, application/x-protobuf, nothing else."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self.requests: list[ExportTraceServiceRequest] = []
        self.refused: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                problem = None
                if self.path != "/v1/traces":
                    problem = f"path {self.path}"
                elif self.headers.get("content-type") != "application/x-protobuf":
                    problem = f"content-type {self.headers.get('content-type')}"
                else:
                    try:
                        parsed = ExportTraceServiceRequest.FromString(body)
                    except Exception as exc:  # a malformed body is the test's failure
                        problem = f"unparseable: {exc}"
                if problem is not None:
                    collector.refused.append(problem)
                    self.send_response(HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                collector.raw.append(body)
                collector.requests.append(parsed)
                self.send_response(HTTPStatus.OK)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Collector":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def spans(self) -> list[Span]:
        return [
            span
            for request in list(self.requests)
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]

    def wait_for(self, request_ids: set[str], timeout: float = 15.0) -> list[Span]:
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            seen = {attributes(span).get("tokenbyte.request_id") for span in spans}
            if request_ids <= seen:
                return spans
            assert time.monotonic() < deadline, f"no spans for {request_ids - seen}"
            time.sleep(0.05)


def attributes(span: Any) -> dict[str, Any]:
    values = {}
    for pair in span.attributes:
        kind = pair.value.WhichOneof("value")
        values[pair.key] = getattr(pair.value, kind)
    return values


@contextlib.contextmanager
def serving(tmp_path: Path, **env: str | None) -> Iterator[str]:
    """`manage.py serve` (two workers with Redis, one without) with `env`; yields its URL."""
    port = free_port()
    workers = "2" if os.environ.get("REDIS_URL") else "1"
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                *(sys.executable, "manage.py", "serve", "--no-celery"),
                *("--workers", workers, "--port", str(port)),
            ],
            cwd=REPO,
            env=manage_env(WEB_CONCURRENCY=workers, TMPDIR=str(tmp_path), **env),
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        ready, deadline = 0, time.monotonic() + 90
        while ready < 5:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "serve did not become ready in 90 s"
            try:
                ok = httpx.get(f"{url}/readyz", timeout=2).status_code == HTTPStatus.OK
            except httpx.TransportError:
                ok = False
            ready = ready + 1 if ok else 0
            time.sleep(0.05 if ok else 0.2)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def contains(parent: Any, child: Any) -> bool:
    return (
        parent.start_time_unix_nano
        <= child.start_time_unix_nano
        <= child.end_time_unix_nano
        <= parent.end_time_unix_nano
    )


@pytest.mark.slow
def test_each_request_is_a_server_span_with_a_client_span_per_upstream_attempt(
    tmp_path: Path, openai_upstream: UpstreamCredential, fake_openai: FakeServer
) -> None:
    owner = User.objects.create_user("traces@example.com")
    minted = key_mint(owner=owner, spec=KeySpec(name="traces"))
    secret = minted.secret
    with (
        FakeServer(FakeOpenAI(api_key="sk-backup-for-traces")) as backup,
        Collector() as collector,
    ):
        # The first credential is preferred, so a failure there fails over to the backup.
        openai_upstream.priority = 10
        openai_upstream.save()
        standby, _ = credential_upsert(
            provider="openai",
            api_key="sk-backup-for-traces",
            base_url=f"{backup.url}/v1",
            name="backup",
            priority=0,
        )
        otel = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_SERVICE_NAME": None,
            "OTEL_RESOURCE_ATTRIBUTES": None,
            "OTEL_TRACES_SAMPLER": None,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": None,
        }
        with serving(tmp_path, **otel) as url:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0)
            # A client's trace that is not sampled: no span of it leaves.
            unsampled = client.chat.completions.with_raw_response.create(
                model="GPT-4o",
                messages=HELLO,
                extra_headers={"traceparent": f"00-{'1' * 32}-{'2' * 16}-00"},
            )
            plain = client.chat.completions.with_raw_response.create(
                model="GPT-4o",
                messages=HELLO,
                extra_headers={
                    "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01",
                    "tracestate": "vendor=opaque",
                },
            )
            streamed = client.chat.completions.with_raw_response.create(
                model="GPT-4o",
                messages=HELLO,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = list(streamed.parse())
            fake_openai.app.script.append(Scripted(status=500, body={"error": {"message": "x"}}))
            failover = client.chat.completions.with_raw_response.create(
                model="GPT-4o", messages=HELLO
            )
            # Now the first credential cools down: the backup is tried first, then it.
            for fake in (backup, fake_openai):
                fake.app.script.append(Scripted(status=500, body={"error": {"message": "x"}}))
            with pytest.raises(openai.InternalServerError) as failed:
                client.chat.completions.create(model="GPT-4o", messages=HELLO)
            with pytest.raises(openai.NotFoundError) as unknown:
                client.chat.completions.create(model="No Such Model", messages=HELLO)
            ids = {
                "plain": plain.headers["x-request-id"],
                "streamed": streamed.headers["x-request-id"],
                "failover": failover.headers["x-request-id"],
                "failed": failed.value.response.headers["x-request-id"],
                "unknown": unknown.value.response.headers["x-request-id"],
            }
            spans = collector.wait_for(set(ids.values()))
        # serve stopped gracefully: whatever was queued has been sent by now.
        spans = collector.spans()

    assert collector.refused == []
    by_id = {span.span_id: span for span in spans}
    requests = {
        attributes(span)["tokenbyte.request_id"]: span for span in spans if span.kind == SERVER
    }
    assert unsampled.headers["x-request-id"] not in requests
    assert set(requests) == set(ids.values())
    children: dict[bytes, list[Any]] = {}
    for span in spans:
        if span.kind == CLIENT:
            assert span.parent_span_id in by_id
            children.setdefault(span.parent_span_id, []).append(span)
    assert all(span.kind in (SERVER, CLIENT) for span in spans)
    resource = {
        pair.key: pair.value.string_value
        for pair in collector.requests[0].resource_spans[0].resource.attributes
    }
    assert resource["service.name"] == "tokenbyte"
    assert collector.requests[0].resource_spans[0].scope_spans[0].scope.name == "tokenbyte.gateway"

    # A request whose answer came from the first attempt, in the client's own trace.
    span = requests[ids["plain"]]
    answer = plain.parse()
    got = attributes(span)
    assert span.name == "chat GPT-4o"
    assert span.trace_id.hex() == TRACE_ID
    assert span.parent_span_id.hex() == PARENT_ID
    assert span.trace_state == "vendor=opaque"
    assert span.flags & IS_REMOTE
    assert span.status.code == Status.STATUS_CODE_UNSET
    usage = plain.http_response.json()["usage"]
    assert got == {
        **got,
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "GPT-4o",
        "gen_ai.response.model": "gpt-4o",
        "gen_ai.response.id": answer.id,
        "gen_ai.usage.input_tokens": answer.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": answer.usage.completion_tokens,
        "http.response.status_code": 200,
        "http.route": "/v1/chat/completions",
        "tokenbyte.request_id": ids["plain"],
        "tokenbyte.event_id": plain.headers["x-tokenbyte-generation-id"],
        "tokenbyte.key_id": minted.key.pk,
        "tokenbyte.account_id": owner.pk,
        "tokenbyte.credential_id": openai_upstream.pk,
        "tokenbyte.attempts": 1,
        "tokenbyte.stream": False,
    }
    assert Decimal(got["tokenbyte.cost"]) == Decimal(str(usage["cost"])) > 0
    assert "error.type" not in got
    (attempt,) = children[span.span_id]
    assert attempt.name == "chat gpt-4o"
    assert attempt.trace_id == span.trace_id
    assert contains(span, attempt)
    assert attributes(attempt) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "tokenbyte.credential_id": openai_upstream.pk,
        "tokenbyte.attempt": 1,
        "http.response.status_code": 200,
    }

    # A stream: a trace of its own, its first byte's time, the usage of its last chunk.
    span = requests[ids["streamed"]]
    got = attributes(span)
    assert span.parent_span_id == b""
    assert not span.flags & IS_REMOTE
    assert span.trace_id.hex() != TRACE_ID
    assert got["tokenbyte.stream"] is True
    assert 0 < got["tokenbyte.ttfb_ms"] <= (span.end_time_unix_nano - span.start_time_unix_nano)
    assert got["gen_ai.usage.input_tokens"] == chunks[-1].usage.prompt_tokens
    assert got["gen_ai.usage.output_tokens"] == chunks[-1].usage.completion_tokens
    assert got["gen_ai.response.id"] == chunks[0].id
    assert len(children[span.span_id]) == 1

    # A failover: the failed attempt, then the one whose answer was used, in time order.
    span = requests[ids["failover"]]
    got = attributes(span)
    assert (got["tokenbyte.attempts"], got["tokenbyte.credential_id"]) == (2, standby.pk)
    assert got["http.response.status_code"] == 200
    assert span.status.code == Status.STATUS_CODE_UNSET
    first, second = sorted(children[span.span_id], key=lambda s: s.start_time_unix_nano)
    assert contains(span, first)
    assert contains(span, second)
    assert first.end_time_unix_nano <= second.start_time_unix_nano
    assert attributes(first) == {
        **attributes(first),
        "tokenbyte.credential_id": openai_upstream.pk,
        "tokenbyte.attempt": 1,
        "http.response.status_code": 500,
        "error.type": "upstream_error",
    }
    assert first.status.code == Status.STATUS_CODE_ERROR
    assert (
        attributes(second)["tokenbyte.credential_id"],
        attributes(second)["tokenbyte.attempt"],
    ) == (
        standby.pk,
        2,
    )
    assert "error.type" not in attributes(second)
    assert second.status.code == Status.STATUS_CODE_UNSET

    # Every attempt failed: the request span is an error too.
    span = requests[ids["failed"]]
    got = attributes(span)
    assert got["http.response.status_code"] == failed.value.status_code == 502
    assert got["error.type"] == "upstream_error"
    assert span.status.code == Status.STATUS_CODE_ERROR
    attempts = sorted(children[span.span_id], key=lambda s: s.start_time_unix_nano)
    assert [attributes(a)["tokenbyte.credential_id"] for a in attempts] == [
        standby.pk,
        openai_upstream.pk,
    ]
    assert all(a.status.code == Status.STATUS_CODE_ERROR for a in attempts)
    assert all(contains(span, a) for a in attempts)

    # No card for the model: no upstream was called; a client error is no span error.
    span = requests[ids["unknown"]]
    got = attributes(span)
    assert span.name == "chat"
    assert (got["http.response.status_code"], got["error.type"]) == (404, "model_not_found")
    assert "gen_ai.provider.name" not in got
    assert span.status.code == Status.STATUS_CODE_UNSET
    assert span.span_id not in children

    # Identifiers and counts only: never a key, a prompt or an answer.
    sent = b"".join(collector.raw)
    for never in (
        secret,
        "sk-fake-openai",
        "sk-backup-for-traces",
        str(HELLO[0]["content"]),
        str(answer.choices[0].message.content),
    ):
        assert never.encode() not in sent, never


def test_with_no_endpoint_the_sdk_is_never_imported() -> None:
    script = """
import sys
import django
django.setup()
import tokenbyte.asgi
from decimal import Decimal
from billing.events import UsageEvent
from billing.usage import Usage
from proxy.gateway.observe import Observer, observed
from proxy.gateway.tracing import start_tracing
assert start_tracing() is None
event = UsageEvent(
    event_id="e", request_id="r", endpoint="chat.completions", key_id=1, account_id=1,
    card_id=1, model="GPT-4o", provider="openai", upstream_model="gpt-4o", credential_id=1,
    status=200, error_code=None, stream=False, usage=Usage(output=1), cost=Decimal(0),
    started_at=0.0, latency_ms=1.0, ttfb_ms=None, attempts=1,
)
observed(lambda event: None, Observer(), start_tracing())(event)
# redis-py imports the SDK's metrics package whenever it is installed (its own, opt-in
# observability); the tracing SDK and our span builder must not be loaded.
loaded = sorted(
    name for name in sys.modules
    if name.startswith(("opentelemetry.sdk.trace", "opentelemetry.exporter", "proxy.gateway.spans"))
)
assert not loaded, loaded
"""
    env = subprocess_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=None,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=None,
        TOKENBYTE_ACCESS_LOG="off",
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        (f"00-{TRACE_ID}-{PARENT_ID}-01", (TRACE_ID, PARENT_ID, 1)),
        (f"00-{TRACE_ID}-{PARENT_ID}-00", (TRACE_ID, PARENT_ID, 0)),
        (f"01-{TRACE_ID}-{PARENT_ID}-01-later-fields", (TRACE_ID, PARENT_ID, 1)),
        (f"00-{TRACE_ID}-{PARENT_ID}-01-extra", None),  # version 00 has exactly four fields
        (f"ff-{TRACE_ID}-{PARENT_ID}-01", None),
        (f"00-{'0' * 32}-{PARENT_ID}-01", None),
        (f"00-{TRACE_ID}-{'0' * 16}-01", None),
        (f"00-{TRACE_ID.upper()}-{PARENT_ID}-01", None),
        (f"00-{TRACE_ID[:-2]}zz-{PARENT_ID}-01", None),
        (f"00-{TRACE_ID[:-2]} a-{PARENT_ID}-01", None),
        (f"00-{TRACE_ID}-{PARENT_ID}-0", None),
        ("garbage", None),
    ],
)
def test_a_clients_traceparent_is_taken_only_when_well_formed(
    header: str, parsed: tuple[str, str, int] | None
) -> None:
    from proxy.gateway.span_encoding import parse_traceparent as _parent

    found = _parent([(b"traceparent", header.encode()), (b"tracestate", b"a=1")])
    if parsed is None:
        assert found is None
    else:
        assert found == (bytes.fromhex(parsed[0]), bytes.fromhex(parsed[1]), parsed[2], "a=1")
    assert _parent([(b"tracestate", b"a=1")]) is None
