"""POST /v1/chat/completions to OpenAI, through the official openai SDK and raw HTTP."""

import json
from decimal import Decimal

import httpx
import openai
import pytest

from tests.conftest import LiveServer
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.server import FakeServer
from tests.proxy.conftest import EventLog, local_llama

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Say hello"}]  # 2 words + 3 = 5 prompt tokens in the fake
REPLY_TOKENS = 8  # "Hello from the fake model, happy to help."


def exact(response: httpx.Response) -> dict:
    return json.loads(response.text, parse_float=Decimal)


def post(gateway: LiveServer, api_key: str, body: dict, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {api_key}", **headers},
        timeout=30,
    )


def test_non_streaming_answer_is_priced_and_echoes_the_title(
    openai_client: openai.OpenAI, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(model="GPT-4o", messages=HELLO)
    completion = raw.parse()
    assert completion.model == "GPT-4o"
    assert completion.choices[0].message.content == "Hello from the fake model, happy to help."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, REPLY_TOKENS)
    usage = json.loads(raw.http_response.text, parse_float=Decimal)["usage"]
    # 5 x $2.50 + 8 x $10.00 per million
    assert usage["cost"] == Decimal("0.0000925")
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert fake_openai.app.received[-1].body["model"] == "gpt-4o"  # the upstream id, not the title
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert event.status == 200
    assert event.cost == Decimal("0.0000925")
    assert event.usage.uncached_input == 5
    assert event.usage.output == REPLY_TOKENS
    assert event.provider == "openai"
    assert event.stream is False
    assert event.ttfb_ms is not None
    assert event.latency_ms >= event.ttfb_ms


def test_streaming_relays_chunks_and_the_usage_chunk_only_when_asked(
    openai_client: openai.OpenAI, fake_openai: FakeServer
) -> None:
    chunks = list(
        openai_client.chat.completions.create(model="GPT-4o", messages=HELLO, stream=True)
    )
    assert all(chunk.model == "GPT-4o" for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the fake model, happy to help."
    # The gateway always asked the upstream for usage, to bill it.
    assert fake_openai.app.received[-1].body["stream_options"] == {"include_usage": True}

    with_usage = list(
        openai_client.chat.completions.create(
            model="GPT-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    last = with_usage[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (5, REPLY_TOKENS)
    assert Decimal(str(last.usage.model_extra["cost"])) == Decimal("0.0000925")


def test_stream_wire_format_ends_with_done(gateway: LiveServer, api_key: str) -> None:
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        json={"model": "GPT-4o", "messages": HELLO, "stream": True},
        headers={"authorization": f"Bearer {api_key}", "x-request-id": "trace-stream-0001"},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-request-id"] == "trace-stream-0001"
        body = response.read().decode()
    frames = [frame for frame in body.split("\n\n") if frame]
    assert all(frame.startswith("data: ") for frame in frames)
    assert frames[-1] == "data: [DONE]"
    first = json.loads(frames[0][6:])
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert "usage" not in first


def test_streamed_and_unstreamed_requests_cost_exactly_the_same(
    openai_client: openai.OpenAI, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    fake_openai.app.cached_tokens = 2  # prove the cache bucket is priced the same way too
    plain = openai_client.chat.completions.with_raw_response.create(
        model="GPT-4o mini", messages=HELLO
    )
    streamed = openai_client.chat.completions.with_raw_response.create(
        model="GPT-4o mini", messages=HELLO, stream=True
    )
    list(streamed.parse())
    one = usage_events.for_request(plain.headers["x-request-id"])
    two = usage_events.for_request(streamed.headers["x-request-id"])
    assert one.usage == two.usage
    assert one.cost == two.cost
    # 3 uncached x 0.15 + 2 cached x 0.075 + 8 x 0.60, per million
    assert one.cost == Decimal("0.00000045") + Decimal("0.00000015") + Decimal("0.0000048")


def test_tools_round_trip_streamed_and_not(
    openai_client: openai.OpenAI, fake_openai: FakeServer
) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    question = [{"role": "user", "content": "Weather in Paris?"}]
    first = openai_client.chat.completions.create(
        model="GPT-4.1",
        messages=question,
        tools=tools,
        tool_choice="auto",
        parallel_tool_calls=False,
    )
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    sent = fake_openai.app.received[-1].body
    assert sent["tool_choice"] == "auto"
    assert sent["parallel_tool_calls"] is False

    history = [
        *question,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]},
        {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"},
    ]
    answer = openai_client.chat.completions.create(model="GPT-4.1", messages=history, tools=tools)
    assert answer.choices[0].message.content == "The tool said: 18 degrees and sunny"

    stream = openai_client.chat.completions.create(
        model="GPT-4.1", messages=question, tools=tools, stream=True
    )
    arguments = ""
    names = []
    for chunk in stream:
        for delta_call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if delta_call.function and delta_call.function.name:
                names.append(delta_call.function.name)
            arguments += (delta_call.function.arguments or "") if delta_call.function else ""
    assert names == ["get_weather"]
    assert json.loads(arguments) == {"city": "Paris"}


def test_image_parts_json_mode_and_common_fields_pass_through(
    openai_client: openai.OpenAI, fake_openai: FakeServer
) -> None:
    image = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe this image as json"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                },
            ],
        }
    ]
    reply = openai_client.chat.completions.create(
        model="GPT-4o",
        messages=image,
        response_format={"type": "json_object"},
        temperature=0.2,
        top_p=0.9,
        stop=["END"],
        seed=7,
        n=2,
        logprobs=True,
        top_logprobs=2,
        user="end-user-42",
        max_tokens=50,
    )
    assert json.loads(reply.choices[0].message.content or "") == {"answer": "hello", "ok": True}
    assert len(reply.choices) == 2
    sent = fake_openai.app.received[-1].body
    assert sent["messages"][0]["content"][1]["image_url"]["detail"] == "low"
    for field, value in {
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 7,
        "n": 2,
        "logprobs": True,
        "top_logprobs": 2,
        "user": "end-user-42",
        "max_tokens": 50,
        "response_format": {"type": "json_object"},
    }.items():
        assert sent[field] == value, field


def test_reasoning_models_get_max_completion_tokens_and_reasoning_is_billed_as_output(
    openai_client: openai.OpenAI, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    fake_openai.app.reasoning_tokens = 100
    raw = openai_client.chat.completions.with_raw_response.create(
        model="o3", messages=HELLO, max_tokens=500
    )
    completion = raw.parse()
    sent = fake_openai.app.received[-1].body
    assert "max_tokens" not in sent
    assert sent["max_completion_tokens"] == 500
    assert completion.usage is not None
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 100
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert (event.usage.output, event.usage.reasoning) == (REPLY_TOKENS, 100)
    # o3: 5 x $2 + 108 x $8 per million
    assert event.cost == Decimal("0.000874")


def test_upstream_400_is_relayed_naming_the_field(
    gateway: LiveServer, api_key: str, fake_openai: FakeServer
) -> None:
    # A rule only OpenAI itself applies (the gateway checks types and ranges, not this).
    json_mode = {"model": "GPT-4o", "messages": HELLO, "response_format": {"type": "json_object"}}
    response = post(gateway, api_key, json_mode)
    assert len(fake_openai.app.received) == 1
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "messages"
    assert "'json'" in error["message"]
    unknown = post(gateway, api_key, {"model": "GPT-4o", "messages": HELLO, "bogus_field": 1})
    assert unknown.status_code == 400
    assert "bogus_field" in unknown.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HELLO}, "model"),
        ({"model": "GPT-4o"}, "messages"),
        ({"model": "GPT-4o", "messages": []}, "messages"),
        ({"model": "GPT-4o", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "GPT-4o", "messages": HELLO, "stream": "yes"}, "stream"),
        ({"model": "GPT-4o", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
        ({"model": "text-embedding-3-small", "messages": HELLO}, "model"),
    ],
)
def test_bad_requests_are_400_naming_the_field_and_never_reach_upstream(
    gateway: LiveServer,
    api_key: str,
    fake_openai: FakeServer,
    body: dict,
    param: str,
) -> None:
    response = post(gateway, api_key, body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert "x-request-id" in response.headers
    assert fake_openai.app.received == []


def test_malformed_json_unknown_model_and_oversized_bodies(
    gateway: LiveServer, api_key: str, settings: object, fake_openai: FakeServer
) -> None:
    headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
    url = f"{gateway.url}/v1/chat/completions"
    broken = httpx.post(url, content=b'{"model": "GPT-4o", "messages": [', headers=headers)
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "invalid_json"

    unknown = httpx.post(url, json={"model": "GPT-4o-mni", "messages": HELLO}, headers=headers)
    assert unknown.status_code == 404
    assert "'GPT-4o mini'" in unknown.json()["error"]["message"]

    settings.TOKENBYTE_MAX_BODY_BYTES = 1024
    big = httpx.post(
        url,
        json={"model": "GPT-4o", "messages": [{"role": "user", "content": "x" * 2000}]},
        headers=headers,
    )
    assert big.status_code == 413
    assert big.json()["error"]["code"] == "request_too_large"
    assert fake_openai.app.received == []


def test_missing_key_is_401(gateway: LiveServer) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions", json={"model": "GPT-4o", "messages": HELLO}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_openai_compatible_server_gets_developer_as_system(
    live_gateway: LiveServer, catalog: None, api_key: str
) -> None:
    with local_llama(live_gateway, FakeOpenAI(api_key="local-key")) as local:
        response = post(
            live_gateway,
            api_key,
            {
                "model": "Local Llama",
                "messages": [{"role": "developer", "content": "Be brief"}, *HELLO],
            },
        )
        assert response.status_code == 200, response.text
        assert local.app.received[-1].body["messages"][0]["role"] == "system"
        assert response.json()["model"] == "Local Llama"


def test_the_key_allowlist_and_identity_reach_the_chat_path(
    gateway: LiveServer, key_owner: object, usage_events: EventLog, fake_openai: FakeServer
) -> None:
    from keys.services import key_mint
    from keys.validation import KeySpec

    limited = key_mint(
        owner=key_owner, spec=KeySpec(name="mini only", allowed_models=("GPT-4o mini",))
    )
    refused = post(gateway, limited.secret, {"model": "GPT-4o", "messages": HELLO})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed"
    assert fake_openai.app.received == []
    allowed = post(gateway, limited.secret, {"model": "gpt-4o-mini", "messages": HELLO})  # an alias
    assert allowed.status_code == 200
    event = usage_events.for_request(allowed.headers["x-request-id"])
    assert event.key_id == limited.key.pk
    assert event.account_id == limited.key.owner_id


def test_anthropic_cache_marks_are_not_sent_to_openai(
    gateway: LiveServer, api_key: str, fake_openai: FakeServer, fake_mistral: FakeServer
) -> None:
    marked = [
        {
            "role": "system",
            "content": [
                {
                    "type": "text",
                    "text": "Long shared context",
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        },
        {"role": "user", "content": "Say hello", "cache_control": {"type": "ephemeral"}},
    ]
    for model, fake in (("GPT-4o", fake_openai), ("Mistral Small", fake_mistral)):
        response = post(gateway, api_key, {"model": model, "messages": marked})
        assert response.status_code == 200, response.text
        sent = fake.app.received[-1].body["messages"]
        assert "cache_control" not in json.dumps(sent)
        assert sent[0]["content"][0]["text"] == "Long shared context"
