"""Stored responses on cards the gateway translates, through the official openai SDK: a response
sent with `store` (OpenAI's default) is kept, its account's own; `previous_response_id` and
`item_reference` continue from it on any card, the provider's signed reasoning included; GET,
DELETE and input_items serve it; another account's ids are nobody's."""

import json
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from django.contrib.auth import get_user_model

from billing.response_models import StoredResponse, StoredResponseItem
from keys.services import KeySpec, key_mint
from tests.conftest import LiveServer
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.server import FakeServer
from tests.proxy.conftest import local_llama
from tests.proxy.test_responses_api import WEATHER
from tests.proxy.test_responses_translated import (
    CLAUDE,
    GEMINI,
    MISTRAL,
    REPLIES,
    SIGNED_REASONING,
    sent_to,
    stream_events,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fakes(
    fake_anthropic: FakeServer, fake_gemini: FakeServer, fake_mistral: FakeServer
) -> dict[str, FakeServer]:
    return {CLAUDE: fake_anthropic, GEMINI: fake_gemini, MISTRAL: fake_mistral}


@pytest.fixture
def stranger(translating_gateway: LiveServer) -> openai.OpenAI:
    """The SDK with a key of another account."""
    other = get_user_model().objects.create_user("stranger@example.com")
    secret = key_mint(owner=other, spec=KeySpec(name="another account")).secret
    return openai.OpenAI(
        base_url=f"{translating_gateway.url}/v1", api_key=secret, max_retries=0, timeout=30
    )


def texts(body: dict[str, Any]) -> str:
    return json.dumps(body)


def error_of(refused: pytest.ExceptionInfo[openai.APIStatusError]) -> dict[str, Any]:
    error = refused.value.body
    assert isinstance(error, dict)
    return error


def test_a_stored_response_is_retrieved_listed_and_deleted(
    chat_client: openai.OpenAI, translating_gateway: LiveServer, api_key: str
) -> None:
    raw = chat_client.responses.with_raw_response.create(model=CLAUDE, input="Say hello")
    served = raw.parse()
    assert served.store is True
    cost = json.loads(raw.http_response.text, parse_float=Decimal)["usage"]["cost"]

    got = httpx.get(
        f"{translating_gateway.url}/v1/responses/{served.id}",
        headers={"authorization": f"Bearer {api_key}"},
        timeout=10,
    )
    assert got.status_code == 200
    kept = json.loads(got.text, parse_float=Decimal)
    assert kept["usage"]["cost"] == cost > 0  # the exact decimal, not a float's
    retrieved = chat_client.responses.retrieve(served.id)
    assert (retrieved.id, retrieved.model, retrieved.status) == (served.id, CLAUDE, "completed")
    assert retrieved.output_text == served.output_text == REPLIES[CLAUDE]
    assert [item.id for item in retrieved.output] == [item.id for item in served.output]

    listed = chat_client.responses.input_items.list(served.id)
    [asked] = listed.data
    assert asked.type == "message"
    assert asked.id
    assert asked.id.startswith("msg_")
    assert asked.content[0].type == "input_text"
    assert "Say hello" in json.dumps(asked.model_dump())

    chat_client.responses.delete(served.id)  # the SDK raises on anything but a 2xx
    assert not StoredResponse.objects.filter(response_id=served.id).exists()
    assert not StoredResponseItem.objects.filter(response__response_id=served.id).exists()
    with pytest.raises(openai.NotFoundError) as missing:
        chat_client.responses.retrieve(served.id)
    assert error_of(missing)["code"] == "response_not_found"
    with pytest.raises(openai.BadRequestError) as gone:
        chat_client.responses.create(model=CLAUDE, input="Again", previous_response_id=served.id)
    assert error_of(gone)["code"] == "previous_response_not_found"


@pytest.mark.parametrize("title", [CLAUDE, GEMINI, MISTRAL])
@pytest.mark.parametrize("stream", [False, True])
def test_previous_response_id_continues_the_conversation(
    title: str,
    stream: bool,
    chat_client: openai.OpenAI,
    translating_gateway: LiveServer,
    api_key: str,
    fakes: dict[str, FakeServer],
) -> None:
    """Each turn goes to the provider with every turn before it, in order; `instructions` are
    the request's own, as on OpenAI (not carried over)."""
    asked = {"model": title, "instructions": "Be brief.", "input": "My name is Ada."}
    if stream:
        _, events = stream_events(translating_gateway, api_key, asked)
        name, data = events[-1]
        assert name == "response.completed"
        first_id = data["response"]["id"]
        assert data["response"]["store"] is True
    else:
        first_id = chat_client.responses.create(**asked).id
    # At once: the response is kept before its last byte reaches the client.
    second = chat_client.responses.create(
        model=title, input="What is my name?", previous_response_id=first_id
    )
    assert second.previous_response_id == first_id
    assert second.output_text == REPLIES[title]
    sent = texts(sent_to(fakes[title]))
    assert "Be brief." not in sent
    order = [sent.index(text) for text in ("My name is Ada.", REPLIES[title], "What is my name?")]
    assert order == sorted(order), sent
    third = chat_client.responses.create(
        model=title, input="And again?", previous_response_id=second.id
    )
    sent = texts(sent_to(fakes[title]))
    order = [
        sent.index(text, start)
        for text, start in (("My name is Ada.", 0), ("What is my name?", 0), ("And again?", 0))
    ]
    assert order == sorted(order), sent
    assert sent.count(REPLIES[title]) == 2
    assert third.previous_response_id == second.id


@SIGNED_REASONING
@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_round_trip_by_previous_response_id_sends_the_signed_reasoning_back(
    title: str,
    signed: str,
    stream: bool,
    chat_client: openai.OpenAI,
    fake_anthropic: FakeServer,
    fake_gemini: FakeServer,
) -> None:
    """Without include=reasoning.encrypted_content the client never sees what the provider
    signed, but the stored response keeps it: the strict fakes refuse the continuation
    without it, as the real APIs do."""
    asked: dict[str, Any] = {
        "model": title,
        "input": "Weather in Paris?",
        "tools": [WEATHER],
        "reasoning": {"effort": "low"},
        "max_output_tokens": 4000,
    }
    if stream:
        with chat_client.responses.stream(**asked) as events:
            first = events.get_final_response()
    else:
        first = chat_client.responses.create(**asked)
    assert not [item for item in first.output if getattr(item, "encrypted_content", None)]
    assert signed not in first.model_dump_json()
    call = next(item for item in first.output if item.type == "function_call")
    second = chat_client.responses.create(
        model=title,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"}],
        tools=[WEATHER],
        reasoning={"effort": "low"},
        max_output_tokens=4000,
    )
    assert second.output_text == "The tool said: Sunny"
    fake = fake_anthropic if title.startswith("Claude") else fake_gemini
    assert signed in json.dumps(sent_to(fake))
    kept = chat_client.responses.retrieve(first.id)
    assert signed not in kept.model_dump_json()  # shown only when asked for
    with_blobs = chat_client.responses.retrieve(first.id, include=["reasoning.encrypted_content"])
    blobs = [item.encrypted_content for item in with_blobs.output if item.type == "reasoning"]
    assert blobs
    assert all(blob and blob.startswith("tokenbyte.r1.") for blob in blobs)


def test_item_references_are_the_stored_items(
    chat_client: openai.OpenAI, fake_anthropic: FakeServer
) -> None:
    """What the AI SDK sends for earlier turns when it stores: references to their items."""
    first = chat_client.responses.create(model=CLAUDE, input="My name is Ada.")
    [message] = first.output
    history: list[Any] = [
        {"role": "user", "content": "My name is Ada."},
        {"type": "item_reference", "id": message.id},
        {"role": "user", "content": "What is my name?"},
    ]
    second = chat_client.responses.create(model=CLAUDE, input=history)
    assert second.output_text == REPLIES[CLAUDE]
    sent = sent_to(fake_anthropic)["messages"]
    assert [turn["role"] for turn in sent] == ["user", "assistant", "user"]
    assert REPLIES[CLAUDE] in json.dumps(sent[1])
    listed = chat_client.responses.input_items.list(second.id, order="asc")
    assert [item.type for item in listed.data] == ["message", "message", "message"]
    assert listed.data[1].id == message.id  # the reference, stored as the item it named
    with pytest.raises(openai.BadRequestError) as unknown:
        chat_client.responses.create(
            model=CLAUDE, input=[{"type": "item_reference", "id": "msg_nobodys"}]
        )
    assert (error_of(unknown)["code"], error_of(unknown)["param"]) == (
        "item_not_found",
        "input[0]",
    )


def test_another_accounts_responses_are_nobodys(
    chat_client: openai.OpenAI, stranger: openai.OpenAI, fake_anthropic: FakeServer
) -> None:
    mine = chat_client.responses.create(model=CLAUDE, input="A secret: 4242.")
    calls = len(fake_anthropic.app.received)
    with pytest.raises(openai.NotFoundError) as theirs:
        stranger.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError) as nobodys:
        stranger.responses.retrieve("resp_" + "0" * 32)
    assert error_of(theirs)["message"].replace(mine.id, "ID") == error_of(nobodys)[
        "message"
    ].replace("resp_" + "0" * 32, "ID")
    with pytest.raises(openai.NotFoundError):
        stranger.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.delete(mine.id)
    with pytest.raises(openai.BadRequestError) as continued:
        stranger.responses.create(model=CLAUDE, input="What?", previous_response_id=mine.id)
    assert error_of(continued)["code"] == "previous_response_not_found"
    reference: list[Any] = [{"type": "item_reference", "id": mine.output[0].id}]
    with pytest.raises(openai.BadRequestError) as referenced:
        stranger.responses.create(model=CLAUDE, input=reference)
    assert error_of(referenced)["code"] == "item_not_found"
    assert len(fake_anthropic.app.received) == calls  # none of it reached the provider
    assert chat_client.responses.retrieve(mine.id).output_text == REPLIES[CLAUDE]


def test_store_false_keeps_nothing(chat_client: openai.OpenAI) -> None:
    served = chat_client.responses.create(model=CLAUDE, input="Say hello", store=False)
    assert served.store is False
    assert not StoredResponse.objects.filter(response_id=served.id).exists()
    with pytest.raises(openai.NotFoundError):
        chat_client.responses.retrieve(served.id)
    with pytest.raises(openai.BadRequestError) as refused:
        chat_client.responses.create(model=CLAUDE, input="Hi", previous_response_id=served.id)
    assert error_of(refused)["code"] == "previous_response_not_found"


def test_an_openai_card_continues_a_stored_response_from_its_items(
    chat_client: openai.OpenAI, fake_openai: FakeServer
) -> None:
    """Switching a stored conversation to an OpenAI card: OpenAI gets the stored items (no ids,
    which it would look up in its own storage, and no other provider's reasoning), and no
    previous_response_id it does not know."""
    first = chat_client.responses.create(
        model="Claude Opus 4.5", input="My name is Ada.", reasoning={"effort": "low"}
    )
    assert {item.type for item in first.output} == {"reasoning", "message"}
    own: list[Any] = [{"id": "msg_clients_own", "role": "user", "content": "What is my name?"}]
    second = chat_client.responses.create(model="GPT-4o", input=own, previous_response_id=first.id)
    assert second.model == "GPT-4o"
    sent = sent_to(fake_openai)
    assert "previous_response_id" not in sent
    assert [item.get("type", "message") for item in sent["input"]] == ["message"] * 3
    assert [item.get("id") for item in sent["input"]] == [None, None, "msg_clients_own"]
    assert "My name is Ada." in json.dumps(sent["input"][0])
    # The OpenAI card's answer is OpenAI's to keep: it continues by OpenAI's own id.
    third = chat_client.responses.create(
        model="GPT-4o", input="Thanks", previous_response_id=second.id
    )
    assert sent_to(fake_openai)["previous_response_id"] == second.id
    assert third.previous_response_id == second.id


def test_with_storage_off_nothing_is_kept_and_continuations_say_why(
    chat_client: openai.OpenAI, translating_gateway: LiveServer
) -> None:
    runtime = translating_gateway.runtime
    assert runtime is not None
    runtime.responses.enabled = False  # TOKENBYTE_STORE_RESPONSES=off
    try:
        served = chat_client.responses.create(model=CLAUDE, input="Say hello", store=True)
        assert served.store is False
        assert not StoredResponse.objects.exists()
        with pytest.raises(openai.BadRequestError) as refused:
            chat_client.responses.create(model=CLAUDE, input="Hi", previous_response_id=served.id)
        error = error_of(refused)
        assert error["code"] == "unsupported_parameter"
        assert "TOKENBYTE_STORE_RESPONSES" in error["message"]
        with pytest.raises(openai.NotFoundError) as missing:
            chat_client.responses.retrieve(served.id)
        assert "TOKENBYTE_STORE_RESPONSES" in error_of(missing)["message"]
    finally:
        runtime.responses.enabled = True


def test_cancel_is_for_background_responses_only(
    chat_client: openai.OpenAI, translating_gateway: LiveServer, api_key: str
) -> None:
    served = chat_client.responses.create(model=CLAUDE, input="Say hello")
    with pytest.raises(openai.BadRequestError):
        chat_client.responses.cancel(served.id)
    with pytest.raises(openai.NotFoundError):
        chat_client.responses.cancel("resp_" + "0" * 32)
    headers = {"authorization": f"Bearer {api_key}"}
    base = f"{translating_gateway.url}/v1/responses/{served.id}"
    assert httpx.post(base, headers=headers, timeout=10).status_code == 404
    assert httpx.delete(f"{base}/input_items", headers=headers, timeout=10).status_code == 404
    assert httpx.get(f"{base}/input_items?limit=0", headers=headers).status_code == 400
    assert httpx.get(base, timeout=10).status_code == 401


def test_an_openai_compatible_card_speaks_responses_and_continues_a_stored_one(
    chat_client: openai.OpenAI, translating_gateway: LiveServer
) -> None:
    """A self-hosted OpenAI-compatible server (chat completions only) behind /v1/responses:
    plain, streamed, and a tool round trip by previous_response_id."""
    with local_llama(translating_gateway, FakeOpenAI(api_key="local-key")) as local:
        plain = chat_client.responses.create(model="Local Llama", input="Say hello")
        assert plain.output_text == local.app.reply
        assert local.app.received[-1].path == "/v1/chat/completions"
        with chat_client.responses.stream(model="Local Llama", input="Say hello") as events:
            streamed = events.get_final_response()
        assert streamed.output_text == local.app.reply
        assert streamed.usage is not None
        assert plain.usage is not None
        assert streamed.usage.model_dump()["cost"] == plain.usage.model_dump()["cost"] > 0
        first = chat_client.responses.create(
            model="Local Llama", input="Weather in Paris?", tools=[WEATHER]
        )
        [call] = first.output
        assert call.type == "function_call"
        second = chat_client.responses.create(
            model="Local Llama",
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"}],
            tools=[WEATHER],
        )
        assert second.output_text == "The tool said: Sunny"
        sent = local.app.received[-1].body["messages"]
        assert [turn["role"] for turn in sent] == ["user", "assistant", "tool"]
