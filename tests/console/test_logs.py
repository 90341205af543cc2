"""/logs/: each filter and the search select exactly the records they name, pages walk every
record once, exports carry the filtered set, and nobody sees another account's requests."""

import csv
import dataclasses
import io
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http import HTTPStatus
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from billing.events import UpstreamAttempt, UsageEvent
from billing.models import UsageRecord
from billing.pricing import usage_cost
from billing.services import usage_events_record
from billing.usage import Usage
from billing.usage_search import UsageFilters, usage_log_page
from keys.services import key_mint
from keys.validation import KeySpec
from proxy.models import ModelCard
from proxy.selectors import card_prices
from proxy.services import catalog_sync, credential_upsert
from tests.billing.charges import usage_event

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def alice(client: Client) -> User:
    user = User.objects.create_user("alice@example.com", "pw-123456789-long")
    client.force_login(user)
    return user


def record(account: User, **changes: Any) -> UsageEvent:
    event = usage_event(account_id=account.pk, cost=changes.pop("cost", "0.001"), started_at=NOW)
    event = dataclasses.replace(event, **changes)
    usage_events_record(events=[event])
    return event


@pytest.fixture
def seeded(alice: User) -> dict[str, Any]:
    """A spread of Alice's requests, one field apart, and Bob's, which she must never see."""
    bob = User.objects.create_user("bob@example.com", "pw-123456789-long")
    work = key_mint(owner=alice, spec=KeySpec(name="work laptop")).key
    ci = key_mint(owner=alice, spec=KeySpec(name="ci runner")).key
    at = NOW.timestamp()
    events = {
        "plain": record(alice, key_id=work.pk, started_at=at - 60),
        "old": record(alice, key_id=work.pk, started_at=at - 3 * 86400),
        "claude": record(
            alice, key_id=ci.pk, model="Claude Sonnet 4.5", provider="anthropic", started_at=at
        ),
        "limited": record(
            alice, key_id=ci.pk, status=429, error_code="rate_limit_exceeded", started_at=at - 5
        ),
        "broken": record(
            alice, key_id=work.pk, status=502, error_code="upstream_error", started_at=at - 9
        ),
        "streamed": record(alice, key_id=work.pk, stream=True, started_at=at - 20),
        "slow": record(alice, key_id=work.pk, latency_ms=9500.0, started_at=at - 30),
        "dear": record(
            alice, key_id=ci.pk, cost="2.5", upstream_request_id="req_up_42", started_at=at - 40
        ),
        "chosen id": record(
            alice,
            key_id=ci.pk,
            request_id="my-own-id-7",
            response_id="chatcmpl-9x",
            started_at=at - 50,
        ),
        "bob": record(
            bob,
            model="GPT-4o",
            request_id="my-own-id-7",
            status=504,
            error_code="upstream_timeout",
            started_at=at - 1,
        ),
    }
    return {"events": events, "work": work, "ci": ci, "bob": bob}


def listed(client: Client, **query: Any) -> list[str]:
    response = client.get("/logs/", query)
    assert response.status_code == HTTPStatus.OK
    return re.findall(r'data-record="([^"]+)"', response.content.decode())


def names(seeded: dict[str, Any], ids: list[str]) -> set[str]:
    by_id = {event.event_id: name for name, event in seeded["events"].items()}
    return {by_id[event_id] for event_id in ids}


ALICE_ALL = {"plain", "old", "claude", "limited", "broken", "streamed", "slow", "dear", "chosen id"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ALICE_ALL),
        ({"status": "ok"}, ALICE_ALL - {"limited", "broken"}),
        ({"status": "error"}, {"limited", "broken"}),
        ({"status": "4xx"}, {"limited"}),
        ({"status": "5xx"}, {"broken"}),
        ({"status": "429"}, {"limited"}),
        ({"error": "upstream_error"}, {"broken"}),
        ({"stream": "yes"}, {"streamed"}),
        ({"stream": "no"}, ALICE_ALL - {"streamed"}),
        ({"min_latency": "5000"}, {"slow"}),
        ({"min_cost": "1"}, {"dear"}),
        ({"model": "Claude Sonnet 4.5"}, {"claude"}),
        ({"provider": "anthropic"}, {"claude"}),
        ({"q": "rate_limit"}, {"limited"}),
        ({"q": "Rate_LIMIT"}, {"limited"}),  # text is matched whatever its case
        ({"q": "timeout"}, set()),  # Bob's error code: not one Alice has met
        ({"q": "gpt"}, ALICE_ALL - {"claude"}),
        ({"q": "req_up_42"}, {"dear"}),  # the upstream's request id
        ({"q": "sonnet"}, {"claude"}),
        ({"q": "my-own-id-7"}, {"chosen id"}),
        (
            {"q": "chatcmpl-9x"},
            {"chosen id"},
        ),  # the answer's body id  # Bob's request of the same x-request-id stays his
        ({"q": "CI RUN"}, {"claude", "limited", "dear", "chosen id"}),  # a key's name
        ({"q": "nothing like this"}, set()),
        ({"status": "error", "q": "upstream"}, {"broken"}),
    ],
)
def test_each_filter_and_the_search_select_exactly_their_records(
    client: Client, seeded: dict[str, Any], query: dict[str, str], expected: set[str]
) -> None:
    assert names(seeded, listed(client, **query)) == expected


def test_the_key_filter_the_time_ranges_and_the_unique_id(
    client: Client, seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    events = seeded["events"]
    work = {"plain", "old", "broken", "streamed", "slow"}
    assert names(seeded, listed(client, key=seeded["work"].pk)) == work
    assert names(seeded, listed(client, q=events["old"].event_id)) == {"old"}
    monkeypatch.setattr(timezone, "now", lambda: NOW + timedelta(minutes=1))
    assert names(seeded, listed(client, range="24h")) == ALICE_ALL - {"old"}
    assert names(seeded, listed(client, range="1h")) == ALICE_ALL - {"old"}
    custom = {"range": "custom", "since": "2026-11-27T00:00", "until": "2026-11-28T00:00"}
    assert names(seeded, listed(client, **custom)) == {"old"}


def test_a_bad_filter_says_what_is_wrong_and_lists_nothing(
    client: Client, seeded: dict[str, Any]
) -> None:
    response = client.get("/logs/", {"min_latency": "-3", "key": "999999"})
    page = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert "data-filter-errors" in page
    assert "data-record=" not in page
    reversed_range = {"range": "custom", "since": "2026-11-28T00:00", "until": "2026-11-27T00:00"}
    assert "Must be after the start" in client.get("/logs/", reversed_range).content.decode()
    export = client.get("/logs/export.csv", {"min_cost": "lots"})
    assert export.status_code == HTTPStatus.BAD_REQUEST
    assert b"min_cost" in export.content


def test_pages_walk_every_record_once_newest_first_even_within_one_microsecond(
    client: Client, alice: User
) -> None:
    base = usage_event(account_id=alice.pk, cost="0.01", started_at=NOW)
    events = [
        dataclasses.replace(
            base, event_id=f"evt-page-{n}", started_at=NOW.timestamp() - (n // 7)
        )  # seven records share each second
        for n in range(120)
    ]
    usage_events_record(events=events)
    seen: list[str] = []
    query: dict[str, str] = {}
    for _ in range(10):
        response = client.get("/logs/", query)
        seen += re.findall(r'data-record="([^"]+)"', response.content.decode())
        cursor = re.search(r'rel="next" href="\?after=([^"]+)"', response.content.decode())
        if cursor is None:
            break
        query = {"after": cursor.group(1)}
    assert sorted(seen) == sorted(event.event_id for event in events)
    assert len(seen) == len(set(seen)) == 120
    starts = list(
        UsageRecord.objects.filter(event_id__in=seen)
        .order_by("-started_at", "-id")
        .values_list("event_id", flat=True)
    )
    assert seen == starts


def test_a_cursor_not_of_ours_shows_the_newest_page(client: Client, seeded: dict[str, Any]) -> None:
    page = client.get("/logs/", {"after": "bm90LWEtY3Vyc29y"}).content.decode()
    assert "not one of ours" in page
    assert names(seeded, re.findall(r'data-record="([^"]+)"', page)) == ALICE_ALL


def test_the_filters_and_the_live_refresh_get_the_results_alone(
    client: Client, seeded: dict[str, Any]
) -> None:
    response = client.get("/logs/", {"status": "error"}, headers={"HX-Request": "true"})
    fragment = response.content.decode()
    assert fragment.lstrip().startswith('<div id="log-results"')
    assert "<html" not in fragment
    assert 'hx-trigger="every 5s' in fragment  # the first page keeps itself fresh
    assert names(seeded, re.findall(r'data-record="([^"]+)"', fragment)) == {"limited", "broken"}


def test_another_accounts_requests_appear_nowhere(client: Client, seeded: dict[str, Any]) -> None:
    bobs = seeded["events"]["bob"]
    assert bobs.event_id not in listed(client, q=bobs.event_id)
    assert client.get(f"/logs/{bobs.event_id}/").status_code == HTTPStatus.NOT_FOUND
    assert client.get("/logs/no-such-request/").status_code == HTTPStatus.NOT_FOUND
    for fmt in ("csv", "jsonl"):
        body = b"".join(client.get(f"/logs/export.{fmt}")).decode()
        assert bobs.event_id not in body
    client.logout()
    assert client.get("/logs/").status_code == HTTPStatus.FOUND  # to the sign-in page


def exported(client: Client, fmt: str, **query: Any) -> list[dict[str, Any]]:
    response = client.get(f"/logs/export.{fmt}", query)
    assert response.status_code == HTTPStatus.OK
    assert response.streaming
    body = b"".join(response).decode()
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(body)))
    return [json.loads(line) for line in body.splitlines()]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_exports_carry_the_filtered_set_with_its_figures(
    client: Client, seeded: dict[str, Any], fmt: str
) -> None:
    rows = exported(client, fmt, status="error")
    assert {row["id"] for row in rows} == {
        seeded["events"][name].event_id for name in ("limited", "broken")
    }
    every = {row["id"]: row for row in exported(client, fmt)}
    assert len(every) == len(ALICE_ALL)
    for stored in UsageRecord.objects.filter(account__email="alice@example.com"):
        row = every[stored.event_id]
        assert Decimal(str(row["charged_usd"])) == stored.charged
        assert Decimal(str(row["cost_usd"])) == stored.cost
        assert int(row["input_tokens"]) == stored.uncached_input_tokens
        assert str(row["status"]) == str(stored.status)
    assert every[seeded["events"]["limited"].event_id]["key"] == "ci runner"


def test_a_csv_cell_never_runs_as_a_formula(client: Client, alice: User) -> None:
    key = key_mint(owner=alice, spec=KeySpec(name="=HYPERLINK(evil)")).key
    record(alice, key_id=key.pk)
    assert exported(client, "csv")[0]["key"] == "'=HYPERLINK(evil)"


def test_the_detail_page_breaks_the_cost_down_to_the_recorded_cost(
    client: Client, alice: User
) -> None:
    catalog_sync()
    card = ModelCard.objects.get(title="GPT-4o")
    prices = card_prices(card_id=card.pk)
    assert prices is not None
    usage = Usage(uncached_input=1200, cache_read=800, output=300, reasoning=50)
    event = record(alice, card_id=card.pk, usage=usage, cost=str(usage_cost(usage, prices)))
    page = client.get(f"/logs/{event.event_id}/").content.decode()
    costs = re.findall(r'data-bucket="[^"]+"><td>[^<]+</td>.*?<code>([^<]+)</code>', page, re.S)
    assert len(costs) == 4  # input, cache read, output, reasoning
    assert sum(Decimal(cost) for cost in costs) == event.cost
    assert event.event_id in page
    assert "data-prices-changed" not in page


def test_usage_log_page_keeps_to_the_account_at_the_selector(seeded: dict[str, Any]) -> None:
    bob: User = seeded["bob"]
    only: Callable[[UsageFilters], set[str]] = lambda filters: {  # noqa: E731
        r.event_id for r in usage_log_page(account_id=bob.pk, filters=filters).records
    }
    assert only(UsageFilters()) == {seeded["events"]["bob"].event_id}
    assert only(UsageFilters(query="my-own-id-7")) == {seeded["events"]["bob"].event_id}


def test_the_detail_page_draws_a_failover_as_a_waterfall_of_its_tries(
    client: Client, alice: User
) -> None:
    primary, _ = credential_upsert(provider="openai", api_key="sk-primary", name="primary-eu")
    backup, _ = credential_upsert(provider="openai", api_key="sk-backup", name="backup-us")
    tries = (
        UpstreamAttempt(primary.pk, 2.0, 100.0, 503, "upstream_error"),
        UpstreamAttempt(backup.pk, 200.0, 300.0, 200, None),
    )
    event = record(
        alice,
        provider="openai",
        credential_id=backup.pk,
        attempts=2,
        attempt_log=tries,
        latency_ms=1000.0,
    )
    page = client.get(f"/logs/{event.event_id}/").content.decode()
    rows = re.findall(r'<tr data-attempt="(\d)">(.*?)</tr>', page, re.S)
    assert [n for n, _ in rows] == ["1", "2"]
    # An account sees its provider's credentials by letter, never the operator's names.
    assert "openai upstream A" in rows[0][1]
    assert "upstream_error" in rows[0][1]
    assert "openai upstream B" in rows[1][1]
    assert "answer used" in rows[1][1]
    assert "primary-eu" not in page
    assert "backup-us" not in page
    # Positions are thousandths of the request's second: 2-102 ms, then 200-500 ms.
    assert 'class="wf-failed" x="2.0" y="0" width="100.0"' in rows[0][1]
    assert 'class="wf-used" x="200.0" y="0" width="300.0"' in rows[1][1]
    relay = re.search(r"<tr data-relay>(.*?)</tr>", page, re.S)
    assert relay is not None
    assert "500.0 ms" in relay.group(1)
    assert 'x="500.0" y="0" width="500.0"' in relay.group(1)

    alice.is_staff = True
    alice.save()
    staff_page = client.get(f"/logs/{event.event_id}/").content.decode()
    assert "primary-eu" in staff_page
    assert "backup-us" in staff_page
    # A record of no tries (refused before any upstream) draws none.
    refused = record(alice, status=402, error_code="insufficient_balance", attempts=0)
    assert "data-waterfall" not in client.get(f"/logs/{refused.event_id}/").content.decode()
