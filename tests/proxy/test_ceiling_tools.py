"""The ceiling with server tools, end to end: a request offering Anthropic's web search is held
for its calls (max_uses x the search price) and a context window of input after each; over
the ceiling its max_uses is lowered (sent upstream, and told in x-tokenbyte-max-uses), then its
output limit, or it is refused with 402 before reaching the upstream; a search without
max_uses is sent with the gateway's; Gemini's grounding queries are charged up to what was
held."""

from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest

from billing.services import ledger_credit
from keys.services import key_mint
from keys.validation import KeySpec
from proxy.gateway.pipeline.ceiling import OutputLimit, ServerTool, worst_case
from proxy.gateway.pipeline.server_tools import DEFAULT_MAX_USES
from proxy.providers.priced import GROUNDING_QUERIES
from proxy.selectors import load_routing_table
from tests.conftest import LiveServer
from tests.fakes.server import FakeServer
from tests.proxy.conftest import EventLog
from tests.proxy.test_ceiling import account

pytestmark = pytest.mark.django_db(transaction=True)

# Claude Haiku 4.5: $1 in, $2 a 1-hour cache write, $5 out, $0.01 a search, a 200k window.
MODEL, MAX_TOKENS = "Claude Haiku 4.5", 50


def search_body(**tool: Any) -> bytes:
    return orjson.dumps(
        {
            "model": MODEL,
            "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": "What is in the news today?"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search", **tool}],
        }
    )


def post(gateway: LiveServer, secret: str, raw: bytes) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/messages",
        content=raw,
        headers={"x-api-key": secret, "content-type": "application/json"},
        timeout=30,
    )


def worst(raw: bytes, uses: int, output: int = MAX_TOKENS) -> Decimal:
    """The gateway's own worst case for `raw` with `uses` searches."""
    card = load_routing_table(version=1).resolve(MODEL)
    assert card is not None
    tool = ServerTool("web_search", uses, lambda _: None)
    return worst_case(card, raw, OutputLimit(output), tools=[tool]).cost()


def capped(cap: str, email: str = "tools@example.com") -> str:
    owner = account("100", email)
    spec = KeySpec(name="capped", max_request_cost=Decimal(cap))
    return key_mint(owner=owner, spec=spec).secret


def test_searches_over_the_cap_are_lowered_and_no_charge_exceeds_it(
    translating_gateway: LiveServer, fake_anthropic: FakeServer, usage_events: EventLog
) -> None:
    cap = Decimal("1.00")
    raw = search_body(max_uses=5)
    assert worst(raw, 2) <= cap < worst(raw, 3)
    fake_anthropic.app.searches = 5  # it would search as often as allowed
    fake_anthropic.app.extra_prompt_tokens = 150_000  # and the results fill the context

    answer = post(translating_gateway, capped(str(cap)), raw)

    assert answer.status_code == 200, answer.text
    assert answer.headers["x-tokenbyte-max-uses"] == "2"
    assert "x-tokenbyte-max-tokens" not in answer.headers
    sent = fake_anthropic.app.received[-1].body
    assert sent["tools"][0]["max_uses"] == 2
    assert answer.json()["usage"]["server_tool_use"]["web_search_requests"] == 2
    event = usage_events.for_request(answer.headers["x-request-id"])
    assert event.usage.server_tools == {"web_search": 2}
    assert event.usage.prompt_tokens > 150_000
    assert 0 < event.cost <= cap


def test_with_one_search_left_the_output_limit_is_lowered_too(
    translating_gateway: LiveServer, fake_anthropic: FakeServer
) -> None:
    raw = orjson.dumps({**orjson.loads(search_body(max_uses=3)), "max_tokens": 64000})
    one = worst(raw, 1, 64000)
    cap = one - Decimal("0.05")  # one search fits, but not with 64,000 output tokens
    assert worst(raw, 1, 16) <= cap

    answer = post(translating_gateway, capped(str(cap)), raw)

    assert answer.status_code == 200, answer.text
    assert answer.headers["x-tokenbyte-max-uses"] == "1"
    lowered = int(answer.headers["x-tokenbyte-max-tokens"])
    assert 16 <= lowered < 64000
    assert worst(raw, 1, lowered) <= cap < worst(raw, 1, lowered + 1)
    sent = fake_anthropic.app.received[-1].body
    assert (sent["tools"][0]["max_uses"], sent["max_tokens"]) == (1, lowered)


def test_when_not_even_one_search_fits_the_request_is_refused_unsent(
    translating_gateway: LiveServer, fake_anthropic: FakeServer, usage_events: EventLog
) -> None:
    raw = search_body(max_uses=1)
    cap = worst(raw, 1, 16) - Decimal("0.01")
    assert worst(raw, 0) <= cap  # without the search it would fit

    answer = post(translating_gateway, capped(str(cap)), raw)

    assert answer.status_code == 402, answer.text
    message = answer.json()["error"]["message"]
    assert "per-request cap" in message
    assert "one call of each server tool" in message
    assert fake_anthropic.app.received == []
    event = usage_events.for_request(answer.headers["x-request-id"])
    assert (event.status, event.cost, event.error_code) == (402, 0, "request_cost_cap")


def test_a_search_without_max_uses_is_sent_with_the_gateways_and_held_for_it(
    translating_gateway: LiveServer, fake_anthropic: FakeServer, usage_events: EventLog
) -> None:
    fake_anthropic.app.searches = 20
    owner = account("100", "balance@example.com")
    secret = key_mint(owner=owner, spec=KeySpec(name="plain")).secret
    raw = search_body()

    answer = post(translating_gateway, secret, raw)

    assert answer.status_code == 200, answer.text
    assert "x-tokenbyte-max-uses" not in answer.headers
    assert fake_anthropic.app.received[-1].body["tools"][0]["max_uses"] == DEFAULT_MAX_USES
    event = usage_events.for_request(answer.headers["x-request-id"])
    assert event.usage.server_tools == {"web_search": DEFAULT_MAX_USES}
    assert event.cost <= worst(raw, DEFAULT_MAX_USES)


def test_the_balance_is_a_ceiling_for_searches_too(
    translating_gateway: LiveServer, fake_anthropic: FakeServer
) -> None:
    raw = search_body(max_uses=4)
    owner = account("100", "low@example.com")
    secret = key_mint(owner=owner, spec=KeySpec(name="plain")).secret
    available = (worst(raw, 1) + worst(raw, 2)) / 2
    ledger_credit(account=owner, amount=available - Decimal(100), note="low balance")

    answer = post(translating_gateway, secret, raw)

    assert answer.status_code == 200, answer.text
    assert answer.headers["x-tokenbyte-max-uses"] == "1"
    assert fake_anthropic.app.received[-1].body["tools"][0]["max_uses"] == 1


def test_a_zero_max_uses_is_refused_as_anthropic_refuses_it(
    translating_gateway: LiveServer, fake_anthropic: FakeServer
) -> None:
    owner = account("100", "zero@example.com")
    secret = key_mint(owner=owner, spec=KeySpec(name="plain")).secret
    answer = post(translating_gateway, secret, search_body(max_uses=0))
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == (
        "tools.0.web_search_20250305.max_uses: Input should be greater than 0"
    )
    assert fake_anthropic.app.received == []
    # The fake answers it as the API does, so the gateway's own check is the API's.
    direct = httpx.post(
        f"{fake_anthropic.url}/v1/messages",
        content=search_body(max_uses=0).replace(MODEL.encode(), b"claude-haiku-4-5"),
        headers={
            "x-api-key": "sk-ant-fake",
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
        },
        timeout=30,
    )
    assert direct.status_code == 400
    assert direct.json()["error"]["message"] == answer.json()["error"]["message"]


def test_gemini_grounding_queries_are_charged_up_to_what_was_held(
    chat_client: Any, fake_gemini: FakeServer, usage_events: EventLog
) -> None:
    fake_gemini.app.search_queries = [f"query {i}" for i in range(GROUNDING_QUERIES + 5)]
    reply = chat_client.chat.completions.with_raw_response.create(
        model="Gemini 3 Pro Preview",
        messages=[{"role": "user", "content": "Weather in Berlin?"}],
        extra_body={"web_search_options": {}},
    )
    event = usage_events.for_request(reply.headers["x-request-id"])
    assert event.usage.server_tools["google_search"] == GROUNDING_QUERIES
