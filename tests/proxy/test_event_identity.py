"""A usage event's identity is its own `event_id`, never the client-chosen `x-request-id`: two
requests that reuse one request id are two events (two charges once billing reads them), and
the request id stays on both for correlation and search."""

import openai
import pytest

from tests.fakes.server import FakeServer
from tests.proxy.chat_helpers import HELLO
from tests.proxy.conftest import EventLog

pytestmark = pytest.mark.slow


def test_two_requests_with_one_client_request_id_are_two_events(
    chat_client: openai.OpenAI, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    chosen = "client-retry-0001"
    for _ in range(2):
        raw = chat_client.chat.completions.with_raw_response.create(
            model="GPT-4o", messages=HELLO, extra_headers={"x-request-id": chosen}
        )
        assert raw.headers["x-request-id"] == chosen  # echoed, for the client's correlation
    usage_events.wait_for(
        lambda _event: sum(e.request_id == chosen for e in usage_events.events) == 2
    )
    events = [e for e in usage_events.events if e.request_id == chosen]
    assert len({event.event_id for event in events}) == 2
    assert all(chosen not in event.event_id for event in events)
    assert [event.status for event in events] == [200, 200]
