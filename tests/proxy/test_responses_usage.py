"""The Responses API's pass-through, pure: its usage into the buckets, the hosted tools' calls
counted from the output, the usage shown back with `cost`, and a stream's final event held
until it is priced."""

from decimal import Decimal

import orjson
import pytest

from billing.pricing import usage_cost
from billing.usage import Usage
from proxy.gateway.errors import UpstreamError
from proxy.providers.openai_responses import (
    ResponsesEvents,
    priced_usage,
    responses_usage,
    usage_from_responses,
)
from tests.proxy.translation_helpers import card, events

GPT = card("gpt-5", "openai")  # $3 in, $15 out, $0.30 cache read, $3.75 cache write


def test_the_usage_is_split_into_disjoint_buckets() -> None:
    usage = usage_from_responses(
        {
            "input_tokens": 100,
            "input_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 30},
            "output_tokens": 50,
            "output_tokens_details": {"reasoning_tokens": 20},
            "total_tokens": 150,
        }
    )
    assert usage == Usage(uncached_input=10, cache_read=60, cache_write=30, output=30, reasoning=20)
    # Counts that do not add up are clamped, never negative.
    odd = usage_from_responses(
        {"input_tokens": 5, "input_tokens_details": {"cached_tokens": 9}, "output_tokens": -1}
    )
    assert odd == Usage(cache_read=5)
    assert usage_from_responses(None) is None


def test_hosted_tool_calls_are_counted_from_the_output_and_the_tier_kept() -> None:
    usage = priced_usage(
        {
            "usage": {"input_tokens": 3, "output_tokens": 4},
            "service_tier": "flex",
            "output": [
                {"type": "web_search_call"},
                {"type": "web_search_call"},
                {"type": "message"},
                {"type": "function_call"},
            ],
        }
    )
    assert usage is not None
    assert (usage.server_tools, usage.service_tier) == ({"web_search": 2}, "flex")


def test_the_usage_shown_keeps_the_upstreams_extras_and_adds_the_cost() -> None:
    usage = Usage(uncached_input=10, cache_read=60, cache_write=30, output=30, reasoning=20)
    shown = orjson.loads(
        orjson.dumps(
            responses_usage(
                {"input_tokens": 1, "input_tokens_details": {"audio_tokens": 0}, "extra": 1},
                usage,
                Decimal("0.000123"),
            )
        )
    )
    assert shown == {
        "input_tokens": 100,
        "input_tokens_details": {"audio_tokens": 0, "cached_tokens": 60, "cache_write_tokens": 30},
        "output_tokens": 50,
        "output_tokens_details": {"reasoning_tokens": 20},
        "total_tokens": 150,
        "extra": 1,
        "cost": 0.000123,
    }


def test_a_stream_holds_its_final_event_until_it_is_priced() -> None:
    tracker = ResponsesEvents(GPT, {"input": "hi"})
    response = {"id": "resp_1", "model": "gpt-5", "output": []}
    out = [
        tracker.feed(event)
        for event in events(
            (
                "response.created",
                {"type": "response.created", "response": response, "sequence_number": 0},
            ),
            (
                "response.output_text.delta",
                {"type": "response.output_text.delta", "delta": "Hi", "sequence_number": 1},
            ),
            (
                "response.completed",
                {
                    "type": "response.completed",
                    "sequence_number": 2,
                    "response": {**response, "usage": {"input_tokens": 4, "output_tokens": 2}},
                },
            ),
        )
    ]
    assert b'"model":"Gpt-5"' in out[0]
    assert out[1].startswith(b"event: response.output_text.delta\n")
    assert out[2] == b""  # held
    assert tracker.done
    assert tracker.response_id == "resp_1"
    usage = tracker.final_usage()
    assert usage == Usage(uncached_input=4, output=2)
    cost = usage_cost(usage, GPT.prices)
    name, data = tracker.closing(usage, cost).split(b"\n", 1)
    assert name == b"event: response.completed"
    final = orjson.loads(data.removeprefix(b"data: "))
    assert final["response"]["model"] == "Gpt-5"
    assert Decimal(str(final["response"]["usage"]["cost"])) == cost == Decimal("0.000042")


def test_an_upstream_error_event_raises_and_the_gateways_takes_its_number() -> None:
    tracker = ResponsesEvents(GPT, {"input": "hello there"})
    (delta,) = events(("response.output_text.delta", {"delta": "Hel", "sequence_number": 4}))
    tracker.feed(delta)
    (error,) = events(
        (
            "error",
            {"type": "error", "code": "server_error", "message": "host x", "sequence_number": 5},
        )
    )
    with pytest.raises(UpstreamError) as raised:
        tracker.feed(error)
    assert "host x" not in raised.value.message
    (error_name, error_data), (failed_name, failed_data) = _frames(
        tracker.failure_frames("upstream_error", raised.value.message, None)
    )
    assert (error_name, error_data["sequence_number"]) == ("error", 5)
    assert (failed_name, failed_data["sequence_number"]) == ("response.failed", 6)
    usage = tracker.final_usage()  # never reported: estimated from the characters
    assert usage.estimated
    assert (usage.uncached_input, usage.output) == (3, 1)


def _frames(raw: bytes) -> list[tuple[str, dict[str, object]]]:
    out = []
    for frame in raw.decode().split("\n\n"):
        if frame:
            name, data = frame.split("\n")
            out.append((name.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    return out


def test_a_failure_ends_with_the_response_as_it_opened_failed_and_the_items_done() -> None:
    tracker = ResponsesEvents(GPT, {"input": "hello there"})
    opening = {"id": "resp_7", "object": "response", "status": "in_progress", "model": "gpt-5"}
    item = {"id": "msg_1", "type": "message", "status": "completed", "content": []}
    for frame in events(
        ("response.created", {"response": opening, "sequence_number": 0}),
        ("response.output_item.done", {"output_index": 0, "item": item, "sequence_number": 1}),
        ("response.output_text.delta", {"delta": "Hel", "sequence_number": 2}),
    ):
        tracker.feed(frame)
    sent = _frames(tracker.failure_frames("upstream_error", "OpenAI broke the stream off.", None))
    assert [name for name, _ in sent] == ["error", "response.failed"]
    assert [data["sequence_number"] for _, data in sent] == [3, 4]
    failed = sent[1][1]["response"]
    assert isinstance(failed, dict)
    assert (failed["id"], failed["model"], failed["status"]) == ("resp_7", "Gpt-5", "failed")
    assert failed["error"] == {"code": "upstream_error", "message": "OpenAI broke the stream off."}
    assert (failed["output"], failed["usage"]) == ([item], None)


def test_a_failure_before_the_upstream_opened_a_response_ends_with_a_bare_one() -> None:
    tracker = ResponsesEvents(GPT, {"input": "hello there"})
    sent = _frames(tracker.failure_frames(None, "OpenAI ended the stream early.", None))
    assert [(name, data["sequence_number"]) for name, data in sent] == [
        ("error", 0),
        ("response.failed", 1),
    ]
    failed = sent[1][1]["response"]
    assert isinstance(failed, dict)
    assert str(failed["id"]).startswith("resp_")
    assert (failed["object"], failed["model"], failed["status"]) == ("response", "Gpt-5", "failed")
    assert failed["error"] == {"code": "server_error", "message": "OpenAI ended the stream early."}
    assert failed["output"] == []
