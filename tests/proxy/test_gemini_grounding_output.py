"""Gemini's grounding with Google Search through the OpenAI-shaped endpoints, with the
official openai SDK: each supported segment's sources as `url_citation` annotations over the
segment (found by its text), the queries as `web_search_calls` on chat and as
`web_search_call` items on /v1/responses, whole and streamed."""

from typing import Any

import openai
import pytest

from tests.fakes.server import FakeServer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

GEMINI = "Gemini 2.5 Flash"  # prices a grounded prompt
SEARCH: dict[str, Any] = {"web_search_options": {}}
QUESTION = [{"role": "user", "content": "Weather in Berlin?"}]
SOURCE = "https://example.com/weather"


def test_a_grounded_chat_answer_carries_its_sources_and_queries(
    chat_client: openai.OpenAI, fake_gemini: FakeServer
) -> None:
    fake_gemini.app.reply = "Berlin is grey today. Expect rain after noon."
    message = (
        chat_client.chat.completions.create(model=GEMINI, messages=QUESTION, extra_body=SEARCH)
        .choices[0]
        .message
    )
    assert message.content == fake_gemini.app.reply
    start = message.content.index("Expect rain")
    assert [
        (a.url_citation.url, a.url_citation.start_index, a.url_citation.end_index)
        for a in message.annotations or ()
    ] == [(SOURCE, start, len(message.content))]
    assert [call["query"] for call in (message.model_extra or {})["web_search_calls"]] == list(
        fake_gemini.app.search_queries
    )
    with chat_client.chat.completions.stream(
        model=GEMINI, messages=QUESTION, extra_body=SEARCH
    ) as stream:
        streamed = stream.get_final_completion().choices[0].message
    assert streamed.content == message.content
    assert [a.url_citation.start_index for a in streamed.annotations or ()] == [start]


def test_a_grounded_response_lists_its_searches_and_cites_its_source(
    chat_client: openai.OpenAI, fake_gemini: FakeServer
) -> None:
    response = chat_client.responses.create(
        model=GEMINI, input="Weather in Berlin?", tools=[{"type": "web_search"}]
    )
    kinds = [item.type for item in response.output]
    assert kinds == ["web_search_call"] * len(fake_gemini.app.search_queries) + ["message"]
    text = response.output[-1].content[0]
    assert [(a.url, a.start_index, a.end_index) for a in text.annotations] == [
        (SOURCE, 0, len(fake_gemini.app.reply))
    ]
    events = list(
        chat_client.responses.create(
            model=GEMINI, input="Weather in Berlin?", tools=[{"type": "web_search"}], stream=True
        )
    )
    names = [event.type for event in events]
    assert names.count("response.output_text.annotation.added") == 1
    assert names.count("response.web_search_call.completed") == len(fake_gemini.app.search_queries)
    assert [event.sequence_number for event in events] == list(range(len(events)))
    final = events[-1].response
    # Gemini names its queries with its last chunk: in a stream they follow the message.
    assert [item.type for item in final.output] == ["message"] + ["web_search_call"] * len(
        fake_gemini.app.search_queries
    )
    assert [a.url for a in final.output[0].content[0].annotations] == [SOURCE]
