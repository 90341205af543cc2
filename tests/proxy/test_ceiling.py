"""One ceiling per request: the key's per-request cap, what is left of its budget and the
account's available balance. Above it the output limit is lowered (sent upstream, and told in
x-tokenbyte-max-tokens) or, when not even a minimal answer fits, 402 names the short one; a
refused request never reaches the upstream and is never charged."""

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import orjson
import pytest

from accounts.models import User
from billing.models import BudgetSpend
from billing.periods import budget_window
from billing.services import ledger_credit
from keys.services import key_mint
from keys.validation import KeySpec
from tests.conftest import LiveServer
from tests.fakes.server import FakeServer
from tests.proxy.conftest import EventLog

pytestmark = pytest.mark.django_db(transaction=True)

# GPT-4o: $2.50 in, $10.00 out per million tokens, 16,384 output tokens at most.
INPUT, OUTPUT, MAX_OUTPUT = Decimal("2.50"), Decimal("10.00"), 16_384
OVERHEAD = 1024  # proxy/gateway/pipeline/ceiling.py PROMPT_OVERHEAD_TOKENS


def body(**extra: object) -> bytes:
    return orjson.dumps(
        {"model": "GPT-4o", "messages": [{"role": "user", "content": "Hello!"}], **extra}
    )


def worst(raw: bytes, output_tokens: int) -> Decimal:
    return ((len(raw) + OVERHEAD) * INPUT + output_tokens * OUTPUT) / 1_000_000


def fitting(raw: bytes, ceiling: Decimal) -> int:
    return math.floor((ceiling - (len(raw) + OVERHEAD) * INPUT / 1_000_000) / (OUTPUT / 1_000_000))


def post(gateway: LiveServer, secret: str, raw: bytes) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=raw,
        headers={"authorization": f"Bearer {secret}", "content-type": "application/json"},
        timeout=30,
    )


def account(balance: str, email: str = "ceiling@example.com") -> User:
    """An account holding exactly `balance` (whatever the starting balance is)."""
    owner = User.objects.create_user(email)
    difference = Decimal(balance) - owner.balance.amount
    if difference:
        ledger_credit(account=owner, amount=difference, note="set for the test")
    return owner


def test_over_the_cap_the_output_limit_is_lowered_to_fit_and_sent_upstream(
    gateway: LiveServer, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    owner = account("10")
    cap = Decimal("0.01")
    secret = key_mint(owner=owner, spec=KeySpec(name="capped", max_request_cost=cap)).secret
    raw = body()
    assert worst(raw, MAX_OUTPUT) > cap  # without a limit, the card's maximum would not fit

    answer = post(gateway, secret, raw)

    assert answer.status_code == 200, answer.text
    lowered = fitting(raw, cap)
    assert answer.headers["x-tokenbyte-max-tokens"] == str(lowered)
    assert fake_openai.app.received[-1].body["max_completion_tokens"] == lowered
    assert worst(raw, lowered) <= cap < worst(raw, lowered + 1)
    event = usage_events.for_request(answer.headers["x-request-id"])
    assert 0 < event.cost <= cap


def test_a_limit_the_client_set_within_the_ceiling_is_left_alone(
    gateway: LiveServer, fake_openai: FakeServer
) -> None:
    owner = account("10")
    secret = key_mint(
        owner=owner, spec=KeySpec(name="capped", max_request_cost=Decimal("0.01"))
    ).secret
    answer = post(gateway, secret, body(max_tokens=50))
    assert answer.status_code == 200, answer.text
    assert "x-tokenbyte-max-tokens" not in answer.headers
    sent = fake_openai.app.received[-1].body
    assert sent["max_tokens"] == 50
    assert "max_completion_tokens" not in sent


def test_a_cap_too_small_for_a_minimal_answer_is_402_and_never_reaches_the_upstream(
    gateway: LiveServer, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    owner = account("10")
    secret = key_mint(
        owner=owner, spec=KeySpec(name="tiny", max_request_cost=Decimal("0.000001"))
    ).secret
    before = len(fake_openai.app.received)

    answer = post(gateway, secret, body())

    assert answer.status_code == 402
    error = answer.json()["error"]
    assert error["code"] == "request_cost_cap"
    assert "per-request cap of $0.000001" in error["message"]
    assert len(fake_openai.app.received) == before
    event = usage_events.for_request(answer.headers["x-request-id"])
    assert (event.status, event.cost, event.error_code) == (402, 0, "request_cost_cap")


def test_the_available_balance_lowers_the_limit_then_refuses(
    gateway: LiveServer, fake_openai: FakeServer
) -> None:
    owner = account("0.02")
    secret = key_mint(owner=owner, spec=KeySpec(name="thin")).secret
    raw = body()

    served = post(gateway, secret, raw)
    assert served.status_code == 200, served.text
    assert served.headers["x-tokenbyte-max-tokens"] == str(fitting(raw, Decimal("0.02")))

    broke = account("0", "broke@example.com")
    refused = post(gateway, key_mint(owner=broke, spec=KeySpec(name="b")).secret, raw)
    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "insufficient_balance"
    assert "balance has $0.00 available" in refused.json()["error"]["message"]


def test_a_spent_budget_refuses_until_its_window_resets(
    gateway: LiveServer, fake_openai: FakeServer
) -> None:
    owner = account("10")
    minted = key_mint(
        owner=owner, spec=KeySpec(name="daily", budget=Decimal("0.05"), budget_period="daily")
    )
    today = budget_window("daily", datetime.now(UTC))
    yesterday = budget_window("daily", datetime.now(UTC) - timedelta(days=1))
    # Yesterday's spend is yesterday's: today's budget is whole.
    BudgetSpend.objects.create(
        key_id=minted.key.pk, window_name=yesterday.name, account=owner, amount=Decimal("0.05")
    )
    assert post(gateway, minted.secret, body()).status_code == 200

    # That call was recorded (and today's row made) before its answer ended.
    BudgetSpend.objects.update_or_create(
        key_id=minted.key.pk,
        window_name=today.name,
        defaults={"account": owner, "amount": Decimal("0.05")},
    )
    # The gateway's mirror of today's spend is filled from the database when it is missing;
    # a fresh key reads it at once.
    fresh = key_mint(
        owner=owner, spec=KeySpec(name="daily2", budget=Decimal("0.05"), budget_period="daily")
    )
    BudgetSpend.objects.create(
        key_id=fresh.key.pk, window_name=today.name, account=owner, amount=Decimal("0.05")
    )
    refused = post(gateway, fresh.secret, body())
    assert refused.status_code == 402
    error = refused.json()["error"]
    assert error["code"] == "budget_exhausted"
    assert "budget of $0.05 has $0.00 left" in error["message"]
    assert f"resets at {today.resets_at:%Y-%m-%d %H:%M} UTC" in error["message"]
