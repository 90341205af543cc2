"""Gemini's errors behind /v1/chat/completions: mapped to OpenAI's shapes, a rejected key failed
over, a stream that breaks ended with an error; the official openai SDK in front, a strict fake
of the Gemini API behind."""

import openai
import pytest

from proxy.models import UpstreamCredential
from proxy.services import credential_upsert
from tests.conftest import LiveServer
from tests.fakes.gemini_rules import GeminiError
from tests.fakes.server import FakeServer, Scripted
from tests.proxy.chat_helpers import HELLO, post
from tests.proxy.conftest import EventLog
from tests.proxy.test_gemini_chat import REPLY

pytestmark = pytest.mark.slow


def test_errors_map_to_openai_shapes(
    translating_gateway: LiveServer, api_key: str, fake_gemini: FakeServer
) -> None:
    invalid = GeminiError("* GenerateContentRequest.contents[0].parts: bad part").body()
    fake_gemini.app.script.append(Scripted(status=400, body=invalid))
    bad = post(translating_gateway, api_key, {"model": "Gemini 2.5 Flash", "messages": HELLO})
    assert bad.status_code == 400
    assert "bad part" in bad.json()["error"]["message"]
    busy = GeminiError("Resource has been exhausted (e.g. check quota).", 429, "RESOURCE_EXHAUSTED")
    fake_gemini.app.script.extend([Scripted(status=429, body=busy.body())] * 2)
    limited = post(translating_gateway, api_key, {"model": "Gemini 2.5 Flash", "messages": HELLO})
    assert limited.status_code == 503
    assert limited.json()["error"]["code"] == "upstream_rate_limited"
    assert "retry-after" in limited.headers
    too_many = post(
        translating_gateway,
        api_key,
        {"model": "Gemini 2.5 Flash", "messages": HELLO, "stop": ["a", "b", "c", "d", "e", "f"]},
    )
    assert (too_many.status_code, too_many.json()["error"]["param"]) == (400, "stop")
    logprobs = post(
        translating_gateway,
        api_key,
        {"model": "Gemini 2.5 Flash", "messages": HELLO, "logprobs": True},
    )
    assert (logprobs.status_code, logprobs.json()["error"]["code"]) == (
        400,
        "unsupported_parameter",
    )


def test_a_rejected_key_fails_over_although_gemini_says_400(
    translating_gateway: LiveServer,
    chat_client: openai.OpenAI,
    fake_gemini: FakeServer,
    gemini_upstream: UpstreamCredential,
    usage_events: EventLog,
) -> None:
    stale, _ = credential_upsert(
        provider="gemini",
        api_key="revoked-gemini-key",
        base_url=fake_gemini.url,
        name="stale",
        priority=10,
    )
    translating_gateway.wait_for_routing(
        lambda routing: len(routing.upstreams_for(routing.resolve("Gemini 2.5 Flash"))) == 2
    )
    raw = chat_client.chat.completions.with_raw_response.create(
        model="Gemini 2.5 Flash", messages=HELLO
    )
    assert raw.parse().choices[0].message.content == REPLY
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert event.attempts == 2
    assert event.credential_id == gemini_upstream.pk
    keys = [r.headers["x-goog-api-key"] for r in fake_gemini.app.received]
    assert keys == ["revoked-gemini-key", "fake-gemini-key"]
    assert stale.pk != gemini_upstream.pk


def test_mid_stream_error_ends_the_stream_with_an_error(
    chat_client: openai.OpenAI, fake_gemini: FakeServer
) -> None:
    fake_gemini.app.stream_error_after = 2
    with pytest.raises(openai.APIError, match="overloaded"):
        list(
            chat_client.chat.completions.create(
                model="Gemini 2.5 Flash", messages=HELLO, stream=True
            )
        )
