"""Claude's web search through the OpenAI-shaped endpoints, with the official openai SDK: the
sources its text cites become `url_citation` annotations over the cited span (chat, whole and
streamed, the SDK's stream helper included); on /v1/responses each search is a
`web_search_call` item (with its query) before the message, streamed with its documented
events, and such items sent back on the next turn (as Codex sends the whole conversation)
are accepted."""

from typing import Any

import openai
import pytest

from tests.fakes.anthropic_search import SEARCH_PREAMBLE, SEARCH_QUERY, search_url
from tests.fakes.server import FakeServer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CLAUDE = "Claude Haiku 4.5"  # prices Claude's web search ($0.01 a search)
SEARCH: dict[str, Any] = {"web_search_options": {}}
QUESTION = [{"role": "user", "content": "What is in the news?"}]


@pytest.fixture
def searching(fake_anthropic: FakeServer) -> FakeServer:
    fake_anthropic.app.search_results = True
    fake_anthropic.app.searches = 2
    return fake_anthropic


def cited_span(reply: str) -> tuple[int, int]:
    """Where the fake's cited text (the reply after its preamble) lies in the whole answer."""
    return len(SEARCH_PREAMBLE), len(SEARCH_PREAMBLE) + len(reply)


def test_a_chat_answer_carries_its_sources_as_url_citations_and_its_searches(
    chat_client: openai.OpenAI, searching: FakeServer
) -> None:
    completion = chat_client.chat.completions.create(
        model=CLAUDE, messages=QUESTION, extra_body=SEARCH
    )
    message = completion.choices[0].message
    assert message.content == SEARCH_PREAMBLE + searching.app.reply
    start, end = cited_span(searching.app.reply)
    assert message.annotations is not None
    assert [
        (a.type, a.url_citation.url, a.url_citation.start_index, a.url_citation.end_index)
        for a in message.annotations
    ] == [("url_citation", search_url(n), start, end) for n in (1, 2)]
    assert message.annotations[0].url_citation.title == "Source 1"
    assert message.content[start:end] == searching.app.reply
    assert (message.model_extra or {})["web_search_calls"] == [
        {"id": f"srvtoolu_fake000{n}", "query": f"{SEARCH_QUERY} {n}", "status": "completed"}
        for n in (1, 2)
    ]


def test_a_streamed_chat_answer_sends_each_source_once_with_its_index(
    chat_client: openai.OpenAI, searching: FakeServer
) -> None:
    chunks = list(
        chat_client.chat.completions.create(
            model=CLAUDE, messages=QUESTION, extra_body=SEARCH, stream=True
        )
    )
    content = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert content == SEARCH_PREAMBLE + searching.app.reply
    extras = [(chunk.choices[0].delta.model_extra or {}) for chunk in chunks if chunk.choices]
    annotations = [a for extra in extras for a in extra.get("annotations") or ()]
    start, end = cited_span(searching.app.reply)
    assert annotations == [
        {
            "index": n - 1,
            "type": "url_citation",
            "url_citation": {
                "start_index": start,
                "end_index": end,
                "url": search_url(n),
                "title": f"Source {n}",
            },
        }
        for n in (1, 2)
    ]
    searches = [call for extra in extras for call in extra.get("web_search_calls") or ()]
    assert [(call["index"], call["query"]) for call in searches] == [
        (n - 1, f"{SEARCH_QUERY} {n}") for n in (1, 2)
    ]
    # The SDK's stream helper merges list deltas by index: both sources survive it.
    with chat_client.chat.completions.stream(
        model=CLAUDE, messages=QUESTION, extra_body=SEARCH
    ) as stream:
        final = stream.get_final_completion()
    merged = final.choices[0].message
    assert merged.content == content
    assert [a.url_citation.url for a in merged.annotations or ()] == [search_url(1), search_url(2)]


def _items(output: list[Any]) -> list[tuple[str, str]]:
    return [(item.type, getattr(item, "status", "")) for item in output]


def test_a_response_lists_each_search_as_a_web_search_call_then_the_cited_message(
    chat_client: openai.OpenAI, searching: FakeServer
) -> None:
    response = chat_client.responses.create(
        model=CLAUDE, input="What is in the news?", tools=[{"type": "web_search"}]
    )
    assert _items(response.output) == [
        ("web_search_call", "completed"),
        ("web_search_call", "completed"),
        ("message", "completed"),
    ]
    queries = [item.action.query for item in response.output[:2]]
    assert queries == [f"{SEARCH_QUERY} 1", f"{SEARCH_QUERY} 2"]
    assert all(item.id.startswith("ws_") for item in response.output[:2])
    text = response.output[2].content[0]
    assert text.text == SEARCH_PREAMBLE + searching.app.reply
    start, end = cited_span(searching.app.reply)
    assert [(a.type, a.url, a.start_index, a.end_index) for a in text.annotations] == [
        ("url_citation", search_url(n), start, end) for n in (1, 2)
    ]
    # The next turn sends the whole conversation back, searches included (Codex, store false).
    follow = chat_client.responses.create(
        model=CLAUDE,
        input=[
            {"role": "user", "content": "What is in the news?"},
            *[item.model_dump(exclude_none=True) for item in response.output],
            {"role": "user", "content": "Thanks. Anything else?"},
        ],
        tools=[{"type": "web_search"}],
        store=False,
    )
    assert follow.status == "completed"
    sent = [r for r in searching.app.received if r.method == "POST"][-1].body
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    # Or by the stored response, whose items hold the searches too.
    stored = chat_client.responses.create(
        model=CLAUDE, input="Anything else?", previous_response_id=response.id
    )
    assert stored.status == "completed"
    sent = [r for r in searching.app.received if r.method == "POST"][-1].body
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"][0]["text"] == text.text


def test_a_streamed_response_sends_the_searches_events_and_each_annotation(
    chat_client: openai.OpenAI, searching: FakeServer
) -> None:
    events = list(
        chat_client.responses.create(
            model=CLAUDE,
            input="What is in the news?",
            tools=[{"type": "web_search"}],
            stream=True,
        )
    )
    names = [event.type for event in events]
    first_search = names.index("response.output_item.added")
    assert names[first_search : first_search + 5] == [
        "response.output_item.added",
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.web_search_call.completed",
        "response.output_item.done",
    ]
    assert names.count("response.web_search_call.completed") == 2
    added = [event for event in events if event.type == "response.output_text.annotation.added"]
    start, end = cited_span(searching.app.reply)
    assert [
        (e.annotation_index, e.annotation.url, e.annotation.start_index, e.annotation.end_index)
        for e in added
    ] == [(0, search_url(1), start, end), (1, search_url(2), start, end)]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    final = events[-1].response
    assert events[-1].type == "response.completed"
    assert _items(final.output) == [
        ("web_search_call", "completed"),
        ("web_search_call", "completed"),
        ("message", "completed"),
    ]
    message = final.output[2]
    assert [a.url for a in message.content[0].annotations] == [search_url(1), search_url(2)]


def test_a_failed_search_is_a_failed_web_search_call(
    chat_client: openai.OpenAI, searching: FakeServer
) -> None:
    searching.app.searches = 1
    searching.app.search_error = "max_uses_exceeded"
    response = chat_client.responses.create(
        model=CLAUDE, input="What is in the news?", tools=[{"type": "web_search"}]
    )
    assert _items(response.output)[0] == ("web_search_call", "failed")
    events = list(
        chat_client.responses.create(
            model=CLAUDE, input="What is in the news?", tools=[{"type": "web_search"}], stream=True
        )
    )
    names = [event.type for event in events]
    assert "response.web_search_call.searching" in names
    assert "response.web_search_call.completed" not in names
    assert _items(events[-1].response.output)[0] == ("web_search_call", "failed")
