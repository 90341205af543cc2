"""Web search in the chat core, pure. Claude's: citations become url_citation annotations over
their text block's span whichever way round the citation and text deltas come; a document's
citations (no URL) are left out; a search's query is read from its streamed input and its
outcome from its result; malformed block indices are ignored, never raised on. Gemini's: a
grounded segment placed by its byte offsets, else found by its text; sources without a web
page left out; the queries as searches."""

from typing import Any

from proxy.providers.anthropic.adapter import completion_from_message
from proxy.providers.anthropic.stream import AnthropicStream
from proxy.providers.gemini.grounding import grounded_citations, grounded_searches
from tests.proxy.translation_helpers import SONNET, events

WEB = {
    "type": "web_search_result_location",
    "url": "https://example.com/a",
    "title": "A",
    "encrypted_index": "x",
    "cited_text": "a",
}
DOCUMENT = {"type": "char_location", "cited_text": "b", "document_index": 0}


def block_event(kind: str, index: Any, **fields: Any) -> tuple[str, dict[str, Any]]:
    return (kind, {"type": kind, "index": index, **fields})


def test_streamed_citations_span_their_block_and_searches_carry_query_and_outcome() -> None:
    stream = AnthropicStream(SONNET, json_tool=False)
    chunks: list[dict[str, Any]] = []
    for event in events(
        ("message_start", {"type": "message_start", "message": {"id": "m", "usage": {}}}),
        block_event(
            "content_block_start",
            0,
            content_block={
                "type": "server_tool_use",
                "id": "s1",
                "name": "web_search",
                "input": {},
            },
        ),
        block_event(
            "content_block_delta", 0, delta={"type": "input_json_delta", "partial_json": '{"que'}
        ),
        block_event(
            "content_block_delta", 0, delta={"type": "input_json_delta", "partial_json": 'ry":"q"}'}
        ),
        block_event("content_block_stop", 0),
        block_event(
            "content_block_start",
            1,
            content_block={
                "type": "web_search_tool_result",
                "tool_use_id": "s1",
                "content": {"type": "web_search_tool_result_error", "error_code": "unavailable"},
            },
        ),
        block_event("content_block_stop", 1),
        block_event("content_block_start", 2, content_block={"type": "text", "text": "Hi, "}),
        block_event("content_block_stop", 2),
        block_event(
            "content_block_start", 3, content_block={"type": "text", "text": "", "citations": []}
        ),
        block_event("content_block_delta", 3, delta={"type": "citations_delta", "citation": WEB}),
        block_event(
            "content_block_delta", 3, delta={"type": "citations_delta", "citation": DOCUMENT}
        ),
        block_event("content_block_delta", 3, delta={"type": "text_delta", "text": "cited"}),
        block_event("content_block_delta", [3], delta={"type": "citations_delta", "citation": WEB}),
        block_event("content_block_stop", 3),
    ):
        chunks += stream.feed(event)
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
    assert "".join(delta.get("content") or "" for delta in deltas) == "Hi, cited"
    assert [delta["web_search_calls"] for delta in deltas if "web_search_calls" in delta] == [
        [{"index": 0, "id": "s1", "query": "q", "status": "failed"}]
    ]
    assert [delta["annotations"] for delta in deltas if "annotations" in delta] == [
        [
            {
                "index": 0,
                "type": "url_citation",
                "url_citation": {
                    "start_index": 4,
                    "end_index": 9,
                    "url": "https://example.com/a",
                    "title": "A",
                },
            }
        ]
    ]


def test_a_whole_answers_citations_and_searches() -> None:
    content: list[dict[str, Any]] = [
        {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"query": "q"}},
        {"type": "web_search_tool_result", "tool_use_id": "s1", "content": []},
        {"type": "text", "text": "Hi, "},
        {"type": "text", "text": "cited", "citations": [WEB, DOCUMENT]},
    ]
    message = {"id": "m", "stop_reason": "end_turn", "content": content}
    reply = completion_from_message(message, SONNET, json_tool=False)["choices"][0]["message"]
    assert reply["content"] == "Hi, cited"
    assert [a["url_citation"] for a in reply["annotations"]] == [
        {"start_index": 4, "end_index": 9, "url": "https://example.com/a", "title": "A"}
    ]
    assert reply["web_search_calls"] == [{"id": "s1", "query": "q", "status": "completed"}]
    # A search never answered (the stream was cut) is not reported as run.
    message["content"] = content[:1] + content[2:]
    reply = completion_from_message(message, SONNET, json_tool=False)["choices"][0]["message"]
    assert "web_search_calls" not in reply


def test_geminis_grounding_is_placed_by_its_bytes_else_its_text_and_pageless_sources_skipped() -> (
    None
):
    content = "Grey \u00e9. Rain at noon. Rain at noon."
    second = len("Grey \u00e9. Rain at noon. ".encode())  # 23 bytes, 22 characters
    metadata = {
        "webSearchQueries": ["berlin weather", 7],
        "groundingChunks": [
            {"web": {"uri": "https://example.com/w", "title": "w"}},
            {"retrievedContext": {"uri": "gs://bucket/doc"}},
        ],
        "groundingSupports": [
            {
                "segment": {"startIndex": second, "text": "Rain at noon."},
                "groundingChunkIndices": [0],
            },
            # Offsets that miss its text: found by the text, from the start.
            {
                "segment": {"startIndex": 99, "text": "Rain at noon."},
                "groundingChunkIndices": [0, 1, 5],
            },
            # None: forward from the one before.
            {"segment": {"text": "Rain at noon."}, "groundingChunkIndices": [0]},
            {"segment": {"text": "Snow."}, "groundingChunkIndices": [0]},  # not in the answer
        ],
    }
    spans = [
        (a["url_citation"]["start_index"], a["url_citation"]["end_index"], a["url_citation"]["url"])
        for a in grounded_citations(metadata, content)
    ]
    page = "https://example.com/w"
    assert spans == [(22, 35, page), (8, 21, page), (22, 35, page)]
    assert content[22:35] == content[8:21] == "Rain at noon."
    assert grounded_searches(metadata) == [
        {"id": "search_1", "query": "berlin weather", "status": "completed"}
    ]
