"""The official openai SDK's `client.responses.create` to a card of every provider: a plain
answer, a stream (the documented events in order, numbered from 0) and a function tool round
trip (the call handed to the client, its result sent back inline as Codex sends it). GPT's
request is passed on to OpenAI's /v1/responses; the others' are translated into each provider's
own API, and the tool result reaches each fake in its wire format."""

import json
from typing import Any

import openai
import pytest
from openai.types.responses import Response

from tests.clients.conftest import CLAUDE, GEMINI, GPT, MISTRAL, REPLIES, UPSTREAM_IDS, Stack

# django_db: so the test database is set up; the data itself is the module fixture's (conftest).
pytestmark = [pytest.mark.slow, pytest.mark.django_db]

TITLES = [CLAUDE, GPT, GEMINI, MISTRAL]
IDS = [title.split()[-1] for title in TITLES]
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture
def client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.v1, api_key=stack.api_key, max_retries=0)


def check_usage(response: Response, output_tokens: int | None = None) -> None:
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens > 0
    if output_tokens is None:
        assert usage.output_tokens > 0
    else:  # every fake counts a word a token
        assert usage.output_tokens == output_tokens
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


def check_upstream(stack: Stack, title: str) -> None:
    sent = stack.fake(title).received[-1]
    if title == GPT:  # passed on, under the card's upstream id
        assert (sent.path, sent.body["model"]) == ("/v1/responses", UPSTREAM_IDS[GPT])
    else:
        assert not sent.path.endswith("/responses")


@pytest.mark.parametrize("title", TITLES, ids=IDS)
def test_a_plain_response(stack: Stack, client: openai.OpenAI, title: str) -> None:
    response = client.responses.create(model=title, input="Say hello", instructions="Be brief.")
    assert (response.model, response.status, response.object) == (title, "completed", "response")
    assert response.id.startswith("resp_")
    assert response.output_text == REPLIES[title]
    check_usage(response, len(REPLIES[title].split()))
    check_upstream(stack, title)


@pytest.mark.parametrize("title", TITLES, ids=IDS)
def test_a_streamed_response(stack: Stack, client: openai.OpenAI, title: str) -> None:
    events = list(
        client.responses.create(
            model=title, input="Say hello", instructions="Be brief.", stream=True
        )
    )
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert "".join(deltas) == REPLIES[title]
    for kind in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert kind in kinds
    final = events[-1].response
    assert (final.model, final.status, final.output_text) == (title, "completed", REPLIES[title])
    check_usage(final, len(REPLIES[title].split()))
    check_upstream(stack, title)


def _ask(client: openai.OpenAI, title: str, stream: bool) -> Response:
    """The first turn, with the tool offered; streamed, its argument deltas add up."""
    request: dict[str, Any] = {
        "model": title,
        "input": QUESTION,
        "tools": [WEATHER],
        "store": False,
    }
    if not stream:
        return client.responses.create(**request)
    events = list(client.responses.create(**request, stream=True))
    assert events[-1].type == "response.completed"
    final = events[-1].response
    arguments = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    calls = [item for item in final.output if item.type == "function_call"]
    assert "".join(arguments) == calls[0].arguments
    return final


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("title", TITLES, ids=IDS)
def test_a_function_tool_round_trip(
    stack: Stack, client: openai.OpenAI, title: str, stream: bool
) -> None:
    first = _ask(client, title, stream)
    check_usage(first)
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    # The output goes back with the result, inline as Codex sends it: nothing is stored.
    echoed = [item.model_dump(exclude_none=True) for item in first.output]
    result = {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny in Paris"}
    request: dict[str, Any] = {
        "model": title,
        "input": [*QUESTION, *echoed, result],
        "tools": [WEATHER],
        "store": False,
    }
    second = client.responses.create(**request)
    check_usage(second)
    assert second.output_text == "The tool said: Sunny in Paris"
    assert stack.tool_results(title)[-1] == "Sunny in Paris"
    check_upstream(stack, title)
