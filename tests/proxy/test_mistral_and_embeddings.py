"""Mistral's translation, and /v1/embeddings for OpenAI and Mistral."""

import json
from decimal import Decimal

import httpx
import openai
import pytest

from tests.conftest import LiveServer
from tests.fakes.mistral_api import FakeMistral, MistralValidation
from tests.fakes.server import FakeServer, Scripted
from tests.proxy.conftest import EventLog

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Say hello"}]


def test_mistral_request_is_translated_to_its_own_names(
    openai_client: openai.OpenAI, fake_mistral: FakeServer, usage_events: EventLog
) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(
        model="Mistral Small",
        messages=[{"role": "developer", "content": "Be brief"}, *HELLO],
        seed=42,
        user="end-user-1",
        max_completion_tokens=64,
        temperature=0.3,
    )
    completion = raw.parse()
    assert completion.model == "Mistral Small"
    assert completion.choices[0].message.content == "Bonjour from the fake Mistral model."
    sent = fake_mistral.app.received[-1].body
    assert sent["model"] == "mistral-small-latest"
    assert sent["random_seed"] == 42
    assert "seed" not in sent
    assert "user" not in sent
    assert sent["max_tokens"] == 64
    assert "max_completion_tokens" not in sent
    assert sent["messages"][0]["role"] == "system"
    # 2+3 and 2+3 prompt tokens, 6 output, at $0.15 / $0.60 per million
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert event.cost == Decimal("0.0000051")


def test_mistral_stream_costs_the_same_and_drops_stream_options(
    openai_client: openai.OpenAI, fake_mistral: FakeServer, usage_events: EventLog
) -> None:
    plain = openai_client.chat.completions.with_raw_response.create(
        model="Mistral Large", messages=HELLO
    )
    streamed = openai_client.chat.completions.with_raw_response.create(
        model="Mistral Large", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(streamed.parse())
    assert "stream_options" not in fake_mistral.app.received[-1].body
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert all(chunk.usage is None for chunk in chunks[:-1])  # Mistral's inline usage is moved
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Bonjour from the fake Mistral model."
    )
    one = usage_events.for_request(plain.headers["x-request-id"])
    two = usage_events.for_request(streamed.headers["x-request-id"])
    assert one.usage == two.usage
    assert one.cost == two.cost
    assert one.cost == (5 * Decimal("0.5") + 6 * Decimal("1.5")) / 1_000_000


def test_mistral_tool_round_trip_maps_call_ids_to_its_format(
    openai_client: openai.OpenAI, fake_mistral: FakeServer
) -> None:
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    ]
    # A history produced by another provider: OpenAI-style call ids Mistral would refuse.
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_AbC123xyz789openai",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_AbC123xyz789openai", "content": "sunny"},
    ]
    answer = openai_client.chat.completions.create(
        model="Mistral Small", messages=history, tools=tools
    )
    assert answer.choices[0].message.content == "The tool said: sunny"
    sent = fake_mistral.app.received[-1].body["messages"]
    mapped = sent[1]["tool_calls"][0]["id"]
    assert len(mapped) == 9
    assert mapped.isalnum()
    assert sent[2]["tool_call_id"] == mapped

    first = openai_client.chat.completions.create(
        model="Mistral Small", messages=history[:1], tools=tools, tool_choice="auto"
    )
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert len(call.id) == 9

    streamed = list(
        openai_client.chat.completions.create(
            model="Mistral Small", messages=history[:1], tools=tools, stream=True
        )
    )
    calls = [
        c for chunk in streamed if chunk.choices for c in (chunk.choices[0].delta.tool_calls or [])
    ]
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}


def test_mistral_refuses_what_it_cannot_honour_before_calling_it(
    gateway: LiveServer, api_key: str, fake_mistral: FakeServer
) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "Mistral Small", "messages": HELLO, "logit_bias": {"50256": -100}},
        headers={"authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "logit_bias"
    assert fake_mistral.app.received == []


def test_mistral_validation_errors_name_the_clients_field(
    gateway: LiveServer, api_key: str, fake_mistral: FakeServer
) -> None:
    # A wrong-typed seed never gets this far (the gateway refuses it itself), so Mistral's own
    # 422 about "random_seed" is scripted, in the fake's wire format.
    refusal = MistralValidation(
        ["body", "random_seed"], "int_type", "Input should be a valid integer"
    )
    fake_mistral.app.script.append(Scripted(status=422, body=FakeMistral().error_body(refusal)))
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "Mistral Small", "messages": HELLO, "seed": 42},
        headers={"authorization": f"Bearer {api_key}"},
    )
    assert fake_mistral.app.received[-1].body["random_seed"] == 42
    # The client sent "seed", so that is the name given.
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "seed"
    assert "valid integer" in error["message"]


def test_openai_embeddings_through_the_sdk(
    openai_client: openai.OpenAI, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    raw = openai_client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["one two three", "four five"], dimensions=4
    )
    result = raw.parse()
    assert result.model == "text-embedding-3-small"
    assert [len(item.embedding) for item in result.data] == [4, 4]
    assert result.data[1].embedding[0] == pytest.approx(0.2)
    sent = fake_openai.app.received[-1].body
    assert sent["model"] == "text-embedding-3-small"
    assert sent["dimensions"] == 4
    usage = json.loads(raw.http_response.text, parse_float=Decimal)["usage"]
    assert usage == {"prompt_tokens": 5, "total_tokens": 5, "cost": Decimal("0.0000001")}
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert event.endpoint == "embeddings"
    assert event.cost == Decimal("0.0000001")


def test_mistral_embeddings_translate_dimensions(
    openai_client: openai.OpenAI, fake_mistral: FakeServer
) -> None:
    result = openai_client.embeddings.create(
        model="Mistral Embed",
        input="bonjour le monde",
        dimensions=3,
        user="someone",
        encoding_format="float",
    )
    assert len(result.data[0].embedding) == 3
    sent = fake_mistral.app.received[-1].body
    assert sent["output_dimension"] == 3
    assert "dimensions" not in sent
    assert "user" not in sent
    assert result.usage.prompt_tokens == 3


def test_embeddings_refuse_chat_models(gateway: LiveServer, api_key: str) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/embeddings",
        json={"model": "GPT-4o", "input": "x"},
        headers={"authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"
