"""/models/: sorts and filters select and order exactly the cards they name, cards no credential
serves are marked, and a card's page shows its prices and the live figures of all traffic."""

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http import HTTPStatus

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from billing.services import usage_events_record
from proxy.models import ModelCard
from proxy.services import catalog_sync, credential_upsert
from tests.billing.charges import usage_event

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 30, 12, 30, tzinfo=UTC)


@pytest.fixture
def cards(monkeypatch: pytest.MonkeyPatch) -> list[ModelCard]:
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    catalog_sync()
    return list(ModelCard.objects.filter(active=True))


def listed(client: Client, **query: object) -> list[str]:
    response = client.get("/models/", query)
    assert response.status_code == HTTPStatus.OK
    return re.findall(r'<tr data-model="([^"]+)"', response.content.decode())


def test_each_filter_keeps_exactly_its_cards(client: Client, cards: list[ModelCard]) -> None:
    everything = set(listed(client))
    assert everything == {card.title for card in cards}
    checks = {
        "type": ("embedding", lambda c: c.type == "embedding"),
        "capability": ("vision", lambda c: c.supports_vision),
        "max_price": ("1", lambda c: c.input_price <= 1),
        "min_context": ("500000", lambda c: c.context_length >= 500_000),
    }
    for field, (value, keep) in checks.items():
        expected = {card.title for card in cards if keep(card)}
        assert set(listed(client, **{field: value})) == expected, field
        assert expected != everything, f"{field}={value} must leave some cards out"
    both = {c.title for c in cards if c.supports_tools and c.supports_reasoning}
    assert set(listed(client, capability=["tools", "reasoning"])) == both


def test_sorts_order_the_cards(client: Client, cards: list[ModelCard]) -> None:
    by_price = sorted(cards, key=lambda c: (c.input_price, c.output_price, c.title))
    assert listed(client, sort="price") == [c.title for c in by_price]
    by_context = sorted(cards, key=lambda c: (-c.context_length, c.title))
    assert listed(client, sort="context") == [c.title for c in by_context]
    newest = max(cards, key=lambda c: c.created_at)
    ModelCard.objects.filter(pk=newest.pk).update(created_at=NOW + timedelta(days=1))
    assert listed(client, sort="newest")[0] == newest.title


def seed_latency(title: str, latency_ms: float, count: int, account: User) -> None:
    base = usage_event(account_id=account.pk, cost="0.001", started_at=NOW, model=title)
    usage_events_record(
        events=[
            dataclasses.replace(
                base,
                event_id=f"evt-{title}-{account.pk}-{n}",
                started_at=(NOW - timedelta(minutes=5 + n)).timestamp(),
                latency_ms=latency_ms,
                status=200 if n else 502,
            )
            for n in range(count)
        ]
    )


def test_latency_sorts_and_shows_every_accounts_traffic(
    client: Client, cards: list[ModelCard]
) -> None:
    alice = User.objects.create_user("alice@example.com")
    bob = User.objects.create_user("bob@example.com")
    seed_latency("GPT-4o", 2400.0, 3, alice)
    seed_latency("GPT-4o", 2400.0, 2, bob)
    seed_latency("Claude Sonnet 4.5", 150.0, 4, bob)
    order = listed(client, sort="latency")
    assert order[:2] == ["Claude Sonnet 4.5", "GPT-4o"]  # the rest had no traffic: after

    gpt = next(card for card in cards if card.title == "GPT-4o")
    page = client.get(f"/models/{gpt.pk}/").content.decode()
    hour = re.search(r'data-window="Last hour" data-requests="(\d+)" data-p50="(\d+)"', page)
    assert hour is not None
    assert hour.group(1) == "5"  # both accounts' requests, no account named
    assert 2_400_000 <= int(hour.group(2)) <= 2_400_000 * Decimal("1.26")
    assert "60.0%" in page  # two of the five failed
    assert "alice@example.com" not in page
    assert "bob@example.com" not in page


def test_cards_no_credential_serves_are_marked(client: Client, cards: list[ModelCard]) -> None:
    page = client.get("/models/").content.decode()
    assert page.count("data-unserved") == len(cards)  # no credential at all yet
    credential_upsert(
        provider="openai", api_key="sk-test-openai", base_url="http://127.0.0.1:9/v1", name="t"
    )
    unserved = re.findall(
        r'<tr data-model="([^"]+)">(?:(?!</tr>).)*data-unserved',
        client.get("/models/").content.decode(),
        re.S,
    )
    assert set(unserved) == {card.title for card in cards if card.provider != "openai"}


def test_a_cards_page_shows_its_prices_and_an_unknown_one_is_404(
    client: Client, cards: list[ModelCard]
) -> None:
    card = next(card for card in cards if card.title == "Claude Sonnet 4.5")
    page = client.get(f"/models/{card.pk}/").content.decode()
    assert f'model="{card.title}"' in page  # the snippet
    assert card.upstream_id in page
    prices = re.search(r"data-prices>(.*?)</dl>", page, re.S)
    assert prices is not None
    assert f"${card.input_price.normalize():f}" in prices.group(1)
    ModelCard.objects.filter(pk=card.pk).update(active=False)
    assert client.get(f"/models/{card.pk}/").status_code == HTTPStatus.NOT_FOUND
    assert client.get("/models/999999/").status_code == HTTPStatus.NOT_FOUND
