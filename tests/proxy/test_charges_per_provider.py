"""For each provider, streamed and not, with cached and reasoning tokens: the ledger's charge is
the card's prices x the upstream's usage, rounded once to 1e-9 USD, and equals what the client
was told in `usage.cost`; a client that leaves mid-stream is charged once. Recorded by billing's
consumer (with Redis) or in the gateway process (embedded mode), as the deployment does."""

import time
from decimal import Decimal
from typing import Any

import httpx
import openai
import orjson
import pytest
import redis
from django.conf import settings

from billing import tasks
from billing.models import LedgerEntry, UsageRecord
from billing.money import charge_for
from tests.conftest import LiveServer
from tests.fakes.server import FakeServer
from tests.proxy.conftest import card

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

HELLO = [{"role": "user", "content": "Say hello"}]
CASES = [
    ("o4-mini", {}),  # OpenAI: cached prompt tokens, reasoning inside completion
    ("Claude Haiku 4.5", {"reasoning_effort": "low"}),  # cache read and write, thinking
    ("Gemini 2.5 Flash", {}),  # cached content, thoughts
    ("Mistral Small", {}),
]


@pytest.fixture
def fakes_report_cache_and_reasoning(
    fake_openai: FakeServer, fake_anthropic: FakeServer, fake_gemini: FakeServer
) -> None:
    fake_openai.app.cached_tokens, fake_openai.app.reasoning_tokens = 2, 3
    fake_anthropic.app.cache_read, fake_anthropic.app.cache_write = 2, 1
    fake_gemini.app.cached_tokens, fake_gemini.app.thoughts_tokens = 1, 4


def recorded(request_id: str) -> UsageRecord:
    client = redis.Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None
    deadline = time.monotonic() + 15
    try:
        while True:
            if client is not None:
                tasks.drain(client, consumer="charges-test", budget=1)
            record = UsageRecord.objects.filter(request_id=request_id).first()
            if record is not None:
                return record
            assert time.monotonic() < deadline, f"{request_id} was not recorded"
            time.sleep(0.05)
    finally:
        if client is not None:
            client.close()


def priced(record: UsageRecord) -> Decimal:
    """The card's prices x the record's buckets, computed here, not by billing.pricing."""
    row = card(record.model)
    per_million = (
        record.uncached_input_tokens * row.input_price
        + record.cache_read_tokens * row.cache_read_price
        + record.cache_write_tokens * row.cache_write_price
        + (record.output_tokens + record.reasoning_tokens) * row.output_price
    )
    return per_million / 1_000_000


def check_charged_once(record: UsageRecord, told: Decimal) -> None:
    assert record.cost == told == priced(record)
    assert record.charged == charge_for(told)
    entries = LedgerEntry.objects.filter(event_id=record.event_id)
    assert list(entries.values_list("kind", "amount")) == [("charge", -record.charged)]


@pytest.mark.usefixtures("fakes_report_cache_and_reasoning")
@pytest.mark.parametrize(("model", "extra"), CASES, ids=[model for model, _ in CASES])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_ledger_charges_the_cards_prices_times_the_upstreams_usage(
    chat_client: openai.OpenAI, model: str, extra: dict[str, Any], stream: bool
) -> None:
    if stream:
        raw = chat_client.chat.completions.with_raw_response.create(
            model=model,
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
            **extra,
        )
        chunks = list(raw.parse())
        usage = chunks[-1].usage
        assert usage is not None
        told = Decimal(str(usage.model_extra["cost"]))
        prompt, completion = usage.prompt_tokens, usage.completion_tokens
    else:
        raw = chat_client.chat.completions.with_raw_response.create(
            model=model, messages=HELLO, **extra
        )
        body = orjson.loads(raw.http_response.content)
        told = Decimal(orjson.dumps(body["usage"]["cost"]).decode())
        prompt, completion = body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]
    record = recorded(raw.headers["x-request-id"])
    check_charged_once(record, told)
    assert prompt == (
        record.uncached_input_tokens + record.cache_read_tokens + record.cache_write_tokens
    )
    assert completion == record.output_tokens + record.reasoning_tokens
    assert record.cache_read_tokens > 0 or model == "Mistral Small"
    assert record.reasoning_tokens > 0 or model == "Mistral Small"


def test_a_client_that_leaves_mid_stream_is_charged_once(
    translating_gateway: LiveServer, api_key: str, fake_openai: FakeServer
) -> None:
    fake_openai.app.chunk_delay = 0.2
    with httpx.stream(
        "POST",
        f"{translating_gateway.url}/v1/chat/completions",
        json={"model": "GPT-4o", "messages": HELLO, "stream": True},
        headers={"authorization": f"Bearer {api_key}"},
        timeout=30,
    ) as response:
        request_id = response.headers["x-request-id"]
        next(response.iter_bytes())  # the first chunk, then the client goes
    record = recorded(request_id)
    assert record.client_disconnected
    # Its 200 had gone out; the record says how the stream ended.
    assert (record.status, record.error_code) == (200, "client_disconnected")
    entries = LedgerEntry.objects.filter(event_id=record.event_id)
    assert entries.count() == (1 if record.charged else 0)
    assert record.charged == charge_for(record.cost)
