"""Documented request fields with the wrong type or out of range: the gateway refuses them itself,
naming the field the way OpenAI does, and never calls an upstream; valid edge values, and fields
OpenAI does not define, still get through. Clients: the official openai SDK (extra_body carries
what its types forbid)."""
# The tables below keep one case a line.
# ruff: noqa: E501

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import LiveServer
from tests.fakes.server import FakeServer
from tests.fakes.vllm_api import FakeVLLM
from tests.proxy.conftest import local_llama

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Say hello"}]


def user(*parts: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(parts)}]


def called(name: str, arguments: Any) -> dict[str, Any]:
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}

# (what the request carries besides model and messages, the param named, OpenAI's code)
# fmt: off
BAD_CHAT: list[tuple[dict[str, Any], str, str]] = [
    ({"temperature": "hot"}, "temperature", "invalid_type"),
    ({"temperature": True}, "temperature", "invalid_type"),  # a boolean is no number
    ({"temperature": 2.5}, "temperature", "decimal_above_max_value"),
    ({"temperature": -0.1}, "temperature", "decimal_below_min_value"),
    ({"top_p": 1.01}, "top_p", "decimal_above_max_value"),
    ({"presence_penalty": -3}, "presence_penalty", "decimal_below_min_value"),
    ({"frequency_penalty": "0.5"}, "frequency_penalty", "invalid_type"),
    ({"n": 0}, "n", "integer_below_min_value"),
    ({"n": 129}, "n", "integer_above_max_value"),
    ({"n": 2.0}, "n", "invalid_type"),
    ({"max_tokens": "100"}, "max_tokens", "invalid_type"),
    ({"max_completion_tokens": True}, "max_completion_tokens", "invalid_type"),
    ({"seed": 2**63}, "seed", "integer_above_max_value"),
    ({"logprobs": "yes"}, "logprobs", "invalid_type"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", "integer_above_max_value"),
    ({"top_logprobs": 2}, "top_logprobs", "invalid_value"),  # logprobs must be true
    ({"stop": 5}, "stop", "invalid_type"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "array_above_max_length"),
    ({"stop": ["END", 5]}, "stop[1]", "invalid_type"),
    ({"stream": True, "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage", "invalid_type"),
    ({"stream_options": {"include_usage": True}}, "stream_options", "invalid_value"),  # no stream
    ({"logit_bias": {"hello": 5}}, "logit_bias", "invalid_value"),
    ({"logit_bias": {"50256": 101}}, "logit_bias.50256", "integer_above_max_value"),
    ({"logit_bias": [50256]}, "logit_bias", "invalid_type"),
    ({"user": 42}, "user", "invalid_type"),
    ({"safety_identifier": ["a"]}, "safety_identifier", "invalid_type"),
    ({"prompt_cache_key": 7}, "prompt_cache_key", "invalid_type"),
    ({"store": "true"}, "store", "invalid_type"),
    ({"metadata": {"team": 5}}, "metadata.team", "invalid_type"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "object_above_max_properties"),
    ({"metadata": {"note": "x" * 513}}, "metadata.note", "string_above_max_length"),
    ({"parallel_tool_calls": 1}, "parallel_tool_calls", "invalid_type"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort", "invalid_value"),
    ({"service_tier": "premium"}, "service_tier", "invalid_value"),
    ({"verbosity": 1}, "verbosity", "invalid_type"),
    ({"modalities": ["text", "video"]}, "modalities[1]", "invalid_value"),
    ({"audio": {"voice": "alloy", "format": "ogg"}}, "audio.format", "invalid_value"),
    ({"prediction": {"type": "content", "content": 5}}, "prediction.content", "invalid_type"),
    ({"web_search_options": {"search_context_size": "huge"}}, "web_search_options.search_context_size", "invalid_value"),
    ({"response_format": "json"}, "response_format", "invalid_type"),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema", "missing_required_parameter"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "a", "strict": "yes"}}}, "response_format.json_schema.strict", "invalid_type"),
    ({"tools": WEATHER}, "tools", "invalid_type"),
    ({"tools": [{"type": "function", "function": {"name": 5}}]}, "tools[0].function.name", "invalid_type"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]}, "tools[0].function.parameters", "invalid_type"),
    ({"tools": [WEATHER], "tool_choice": "any"}, "tool_choice", "invalid_value"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {}}}, "tool_choice.function.name", "missing_required_parameter"),
    ({"function_call": "always"}, "function_call", "invalid_value"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "invalid_value"),
    ({"messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "invalid_type"),
    ({"messages": user()}, "messages[0].content", "empty_array"),
    ({"messages": user({"type": "text", "text": 5})}, "messages[0].content[0].text", "invalid_type"),
    ({"messages": user({"type": "image_url", "image_url": "https://example.com/a.png"})}, "messages[0].content[0].image_url", "invalid_type"),
    ({"messages": user({"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "ultra"}})}, "messages[0].content[0].image_url.detail", "invalid_value"),
    ({"messages": [{"role": "user", "content": "x", "name": 5}]}, "messages[0].name", "invalid_type"),
    ({"messages": [*HELLO, {"role": "assistant", "content": None}]}, "messages[1].content", "missing_required_parameter"),
    ({"messages": [*HELLO, {"role": "assistant", "tool_calls": [called("f", {"city": "Paris"})]}]}, "messages[1].tool_calls[0].function.arguments", "invalid_type"),
    ({"messages": [*HELLO, {"role": "tool", "content": "18 degrees"}]}, "messages[1].tool_call_id", "missing_required_parameter"),
]
# fmt: on


def refusal(call: Any) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as caught:
        call()
    return caught.value


def test_wrong_types_and_ranges_are_refused_naming_the_field_without_calling_openai(
    openai_client: openai.OpenAI, fake_openai: FakeServer
) -> None:
    for fields, param, code in BAD_CHAT:
        error = refusal(
            lambda fields=fields: openai_client.chat.completions.create(
                model="GPT-4o", messages=HELLO, extra_body=fields
            )
        )
        assert (error.status_code, error.param, error.code) == (400, param, code), fields
        assert error.type == "invalid_request_error", fields
        assert f"'{param}'" in error.message, fields
    # Streamed or not, nothing was sent on: the fake would have answered some of these itself.
    stream = refusal(
        lambda: openai_client.chat.completions.create(
            model="GPT-4o", messages=HELLO, stream=True, extra_body={"temperature": "hot"}
        )
    )
    assert stream.param == "temperature"
    assert fake_openai.app.received == []


def test_every_provider_gets_the_same_refusal_before_it_is_called(
    chat_client: openai.OpenAI,
    fake_openai: FakeServer,
    fake_mistral: FakeServer,
    fake_anthropic: FakeServer,
    fake_gemini: FakeServer,
) -> None:
    for model in ("GPT-4o", "Mistral Small", "Claude Sonnet 4.5", "Gemini 2.5 Flash"):
        for fields, param in (
            ({"temperature": "hot"}, "temperature"),
            ({"max_tokens": 0}, "max_tokens"),
            ({"messages": [{"role": "user", "content": {"text": "hi"}}]}, "messages[0].content"),
        ):
            error = refusal(
                lambda model=model, fields=fields: chat_client.chat.completions.create(
                    model=model, messages=HELLO, extra_body=fields
                )
            )
            assert (error.status_code, error.param) == (400, param), (model, fields)
    for fake in (fake_openai, fake_mistral, fake_anthropic, fake_gemini):
        assert fake.app.received == []


def test_valid_edge_values_still_reach_openai(
    openai_client: openai.OpenAI, fake_openai: FakeServer
) -> None:
    edges: list[dict[str, Any]] = [
        {"temperature": 0, "top_p": 0, "presence_penalty": -2, "frequency_penalty": 2},
        {"temperature": 2, "top_p": 1, "presence_penalty": 2.0, "frequency_penalty": -2.0},
        {"temperature": 0.7, "stop": "END", "seed": -(2**63), "n": 128, "max_tokens": 1},
        {"stop": ["a", "b", "c", "d"], "seed": 2**63 - 1, "max_completion_tokens": 1},
        {"logprobs": True, "top_logprobs": 0, "logit_bias": {"50256": -100, "1": 100}},
        {"logprobs": True, "top_logprobs": 20, "user": "end-user-42", "store": True},
        {"metadata": {f"key{i:02d}": "v" * 512 for i in range(16)}, "service_tier": "priority"},
        {"temperature": None, "stop": None, "tools": None, "reasoning_effort": None},
        {
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
        {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {}}}},
    ]
    for fields in edges:
        reply = openai_client.chat.completions.create(
            model="GPT-4o", messages=HELLO, extra_body=fields
        )
        assert reply.choices, fields
        sent = fake_openai.app.received[-1].body
        assert {name: sent.get(name) for name in fields} == fields
    streamed = openai_client.chat.completions.create(
        model="GPT-4o",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True, "include_obfuscation": False},
        temperature=2,
    )
    assert [chunk for chunk in streamed if chunk.usage is not None]
    assert fake_openai.app.received[-1].body["stream_options"]["include_obfuscation"] is False
    history = [
        {"role": "system", "content": [{"type": "text", "text": "Be brief"}]},
        *user(
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        ),
        {"role": "assistant", "content": None, "tool_calls": [called("get_weather", "{}")]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees"},
    ]
    answer = openai_client.chat.completions.create(
        model="GPT-4o", messages=history, tools=[WEATHER]
    )
    assert answer.choices[0].message.content == "The tool said: 18 degrees"
    assert fake_openai.app.received[-1].body["messages"] == history


@pytest.fixture
def fake_vllm(live_gateway: LiveServer, catalog: None) -> Iterator[FakeServer]:
    """A vLLM server behind the gateway, as card "Local Llama"."""
    with local_llama(live_gateway, FakeVLLM(api_key="local-key")) as server:
        yield server


def test_fields_openai_does_not_define_still_reach_an_openai_compatible_server(
    live_gateway: LiveServer, api_key: str, fake_vllm: FakeServer
) -> None:
    client = openai.OpenAI(
        base_url=f"{live_gateway.url}/v1", api_key=api_key, max_retries=0, timeout=30
    )
    extensions = {
        "top_k": 40,
        "min_p": 0.05,
        "repetition_penalty": 1.1,
        "chat_template_kwargs": {"enable_thinking": False},
    }
    reply = client.chat.completions.create(
        model="Local Llama", messages=HELLO, temperature=0, extra_body=extensions
    )
    assert reply.model == "Local Llama"
    sent = fake_vllm.app.received[-1].body
    assert {name: sent.get(name) for name in extensions} == extensions
    # A documented field still gets the gateway's check on the way to such a server.
    error = refusal(
        lambda: client.chat.completions.create(
            model="Local Llama", messages=HELLO, extra_body={**extensions, "top_p": "most"}
        )
    )
    assert error.param == "top_p"
    assert len(fake_vllm.app.received) == 1


BAD_EMBEDDINGS: list[tuple[dict[str, Any], str, str]] = [
    ({"input": []}, "input", "empty_array"),
    ({"input": ""}, "input", "empty_string"),
    ({"input": ["one", ""]}, "input[1]", "empty_string"),
    ({"input": ["one", 2]}, "input[1]", "invalid_type"),
    ({"input": [[1, 2], []]}, "input[1]", "empty_array"),
    ({"input": [[1, 2], [3, "4"]]}, "input[1][1]", "invalid_type"),
    ({"input": ["x"] * 2049}, "input", "array_above_max_length"),
    ({"input": {"text": "x"}}, "input", "invalid_type"),
    ({"encoding_format": "int8"}, "encoding_format", "invalid_value"),
    ({"dimensions": 0}, "dimensions", "integer_below_min_value"),
    ({"dimensions": "4"}, "dimensions", "invalid_type"),
    ({"user": 7}, "user", "invalid_type"),
]


def test_embeddings_fields_are_checked_before_the_upstream(
    openai_client: openai.OpenAI, fake_openai: FakeServer
) -> None:
    for fields, param, code in BAD_EMBEDDINGS:
        error = refusal(
            lambda fields=fields: openai_client.embeddings.create(
                model="text-embedding-3-small", input="hello", extra_body=fields
            )
        )
        assert (error.status_code, error.param, error.code) == (400, param, code), fields
        assert f"'{param}'" in error.message, fields
    assert fake_openai.app.received == []
    tokens = openai_client.embeddings.create(
        model="text-embedding-3-small", input=[[1, 2, 3], [4]], dimensions=1
    )
    assert len(tokens.data) == 2
    assert fake_openai.app.received[-1].body["input"] == [[1, 2, 3], [4]]
