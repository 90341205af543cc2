"""The dashboard's figures are the sums of the records they stand for (read from the rollups),
percentiles within one histogram bucket of the records' own, narrowed by key, model and
provider, and never another account's."""

import dataclasses
import math
import random
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http import HTTPStatus
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.dashboard import bars, line
from accounts.models import User
from billing.dashboard import usage_dashboard
from billing.events import UsageEvent
from billing.models import UsageRecord
from billing.services import usage_events_record
from billing.usage import Usage
from keys.services import key_mint
from keys.validation import KeySpec
from tests.billing.charges import usage_event

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 30, 12, 30, tzinfo=UTC)
STEP = Decimal("1.26")  # a histogram bucket's width: a percentile is read within one


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    return NOW


@pytest.fixture
def alice(client: Client) -> User:
    user = User.objects.create_user("alice@example.com", "pw-123456789-long")
    client.force_login(user)
    return user


def seed(account: User, count: int, **fixed: Any) -> list[UsageEvent]:
    rng = random.Random(count)
    events = []
    for n in range(count):
        base = usage_event(account_id=account.pk, cost=f"0.00{rng.randint(1, 9)}", started_at=NOW)
        changes: dict[str, Any] = {
            "started_at": (NOW - timedelta(minutes=rng.randint(1, 20 * 60))).timestamp(),
            "latency_ms": float(rng.choice([80, 120, 300, 900, 2500, 7000])) + n % 7,
            "status": rng.choice([200, 200, 200, 200, 429, 502]),
            "usage": Usage(uncached_input=rng.randint(1, 900), output=rng.randint(0, 300)),
            "stream": n % 3 == 0,
            "ttfb_ms": 35.0 + n % 50 if n % 3 == 0 else None,
        }
        events.append(dataclasses.replace(base, **(changes | fixed)))
    usage_events_record(events=events)
    return events


@pytest.fixture
def seeded(alice: User, frozen: datetime) -> dict[str, Any]:
    work = key_mint(owner=alice, spec=KeySpec(name="work")).key
    ci = key_mint(owner=alice, spec=KeySpec(name="ci")).key
    seed(alice, 120, key_id=work.pk)
    seed(alice, 60, key_id=ci.pk, model="Claude Sonnet 4.5", provider="anthropic")
    seed(alice, 5, key_id=work.pk, started_at=(NOW - timedelta(days=3)).timestamp())
    bob = User.objects.create_user("bob@example.com", "pw-123456789-long")
    seed(bob, 40)
    return {"work": work, "ci": ci, "bob": bob}


def nearest_rank(values: list[int], percent: int) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percent * len(ordered) / 100)) - 1]


def stats(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-stat="(\w+)" data-value="([^"]*)"', page))


def records(**where: Any) -> list[UsageRecord]:
    since = NOW - timedelta(hours=24)
    return list(UsageRecord.objects.filter(started_at__gte=since, **where))


def test_the_figures_are_the_records_sums(client: Client, seeded: dict[str, Any]) -> None:
    mine = records(account__email="alice@example.com")
    assert len(mine) == 180
    page = client.get("/").content.decode()
    figures = stats(page)
    assert int(figures["requests"]) == 180
    assert Decimal(figures["spend"]) == sum(r.charged for r in mine)
    assert int(figures["errors"]) == sum(1 for r in mine if r.status >= 400)
    latency = re.search(r'data-p50="(\d+)" data-p95="(\d+)" data-p99="(\d+)"', page)
    assert latency is not None
    for percent, shown in zip((50, 95, 99), latency.groups(), strict=True):
        exact = nearest_rank([r.latency_us for r in mine], percent)
        assert exact <= int(shown) <= exact * STEP, (percent, exact, shown)

    dash = usage_dashboard(
        account_id=seeded["work"].owner_id, since=NOW - timedelta(days=1), until=NOW
    )
    assert sum(point.figures.requests for point in dash.series) == 180
    assert sum(point.figures.spend for point in dash.series) == dash.total.spend
    assert dash.total.tokens_in == sum(r.uncached_input_tokens for r in mine)
    assert dash.total.tokens_out == sum(r.output_tokens for r in mine)
    streamed = [r.ttfb_us for r in mine if r.stream and r.ttfb_us is not None]
    ttfb = dash.total.ttfb_us(50)
    assert ttfb is not None
    assert nearest_rank(streamed, 50) <= ttfb <= nearest_rank(streamed, 50) * STEP


def test_breakdowns_and_filters_narrow_to_their_records(
    client: Client, seeded: dict[str, Any]
) -> None:
    page = client.get("/").content.decode()
    by_model = dict(re.findall(r'data-breakdown-model="([^"]+)" data-requests="(\d+)"', page))
    assert by_model == {"GPT-4o": "120", "Claude Sonnet 4.5": "60"}
    by_key = dict(re.findall(r'data-breakdown-key="([^"]+)" data-requests="(\d+)"', page))
    assert by_key == {"work": "120", "ci": "60"}

    ci = seeded["ci"]
    for query, where in (
        ({"key": ci.pk}, {"key_id": ci.pk}),
        ({"model": "GPT-4o"}, {"model": "GPT-4o"}),
        ({"provider": "anthropic"}, {"provider": "anthropic"}),
    ):
        figures = stats(client.get("/", query).content.decode())
        expected = records(account__email="alice@example.com", **where)
        assert int(figures["requests"]) == len(expected), query
        assert Decimal(figures["spend"]) == sum(r.charged for r in expected), query

    week = stats(client.get("/", {"range": "7d"}).content.decode())
    assert int(week["requests"]) == 185  # the three-day-old ones too
    custom = {"range": "custom", "since": "2026-11-27T00:00", "until": "2026-11-28T00:00"}
    assert int(stats(client.get("/", custom).content.decode())["requests"]) == 5
    assert f"/logs/?range=24h&amp;key={ci.pk}" in page  # each row opens its logs


def test_another_accounts_usage_never_shows(client: Client, seeded: dict[str, Any]) -> None:
    page = client.get("/", {"range": "30d"}).content.decode()
    assert int(stats(page)["requests"]) == 185
    client.force_login(seeded["bob"])
    assert int(stats(client.get("/").content.decode())["requests"]) == 40


def test_the_live_refresh_gets_the_figures_alone_and_bad_input_says_why(
    client: Client, seeded: dict[str, Any]
) -> None:
    fragment = client.get("/", {"range": "1h"}, headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<div id="dashboard-live"')
    assert 'hx-trigger="every 5s' in fragment
    assert "<html" not in fragment
    bad = client.get("/", {"range": "custom", "since": "2026-11-28T00:00"})
    assert bad.status_code == HTTPStatus.OK
    assert "needs a start and an end" in bad.content.decode()
    assert "data-stat=" not in bad.content.decode()


def test_a_new_request_shows_on_the_next_refresh(
    client: Client, alice: User, frozen: datetime
) -> None:
    assert stats(client.get("/").content.decode())["requests"] == "0"
    seed(alice, 1, started_at=(NOW - timedelta(seconds=2)).timestamp())
    fragment = client.get("/", headers={"HX-Request": "true"}).content.decode()
    assert stats(fragment)["requests"] == "1"


def test_the_charts_scale_to_their_largest_value() -> None:
    drawn = bars([Decimal(1), Decimal(4), Decimal(0)], ["a", "b", "c"])
    assert [round(bar.height) for bar in drawn] == [29, 116, 0]
    assert line([None, 5, 10]).count(",") == 2
    assert line([None, None]) == ""
