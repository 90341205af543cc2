"""Gemini behind /v1/embeddings: the official openai SDK in front, a strict fake of the Gemini
API behind."""

from decimal import Decimal

import openai
import pytest

from tests.conftest import LiveServer
from tests.fakes.server import FakeServer
from tests.proxy.chat_helpers import post, sent
from tests.proxy.conftest import EventLog

pytestmark = pytest.mark.slow


def test_embeddings_single_and_batched(
    chat_client: openai.OpenAI, fake_gemini: FakeServer, usage_events: EventLog
) -> None:
    # The openai SDK asks for base64 by default and decodes it: the floats must survive.
    one = chat_client.embeddings.with_raw_response.create(
        model="Gemini Embedding", input="hello world"
    )
    result = one.parse()
    assert result.model == "Gemini Embedding"
    assert result.data[0].embedding == pytest.approx([0.5 * (d + 1) for d in range(8)])
    assert fake_gemini.app.received[-1].path == "/v1beta/models/gemini-embedding-001:embedContent"
    assert sent(fake_gemini) == {"content": {"parts": [{"text": "hello world"}]}}
    assert result.usage.prompt_tokens == 2
    event = usage_events.for_request(one.headers["x-request-id"])
    assert event.cost == Decimal("0.0000003")  # 2 x $0.15 per million
    many = chat_client.embeddings.create(
        model="Gemini Embedding", input=["one", "two three"], dimensions=4, encoding_format="float"
    )
    assert [item.index for item in many.data] == [0, 1]
    assert many.data[1].embedding == [1.0, 2.0, 3.0, 4.0]
    assert (
        fake_gemini.app.received[-1].path
        == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    )
    assert sent(fake_gemini)["requests"][1] == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "two three"}]},
        "outputDimensionality": 4,
    }
    assert many.usage.prompt_tokens == 3


def test_embeddings_without_a_reported_count_are_estimated_and_say_so(
    translating_gateway: LiveServer, api_key: str, fake_gemini: FakeServer, usage_events: EventLog
) -> None:
    fake_gemini.app.embed_usage = False
    response = post(
        translating_gateway,
        api_key,
        {"model": "Gemini Embedding", "input": "x" * 40, "encoding_format": "float"},
        path="embeddings",
    )
    assert response.status_code == 200, response.text
    event = usage_events.for_request(response.headers["x-request-id"])
    assert (event.usage.uncached_input, event.usage.estimated) == (10, True)
    tokens = post(
        translating_gateway,
        api_key,
        {"model": "Gemini Embedding", "input": [[1, 2, 3]]},
        path="embeddings",
    )
    assert (tokens.status_code, tokens.json()["error"]["param"]) == (400, "input")
