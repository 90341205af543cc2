"""Money on the console: each key's spend against its budget and when it resets (/keys/), the
balance on the dashboard, and the low-balance banner on every page of a prepaid account."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.test import Client, RequestFactory
from django.utils import timezone
from pytest_django.fixtures import DjangoAssertNumQueries
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import User
from billing.models import Balance
from billing.periods import budget_window, calendar_month
from billing.services import ledger_credit
from keys.models import ApiKey
from keys.selectors import keys_period_spend
from keys.services import key_mint
from keys.validation import KeySpec
from tests.billing.charges import charge

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_starting_balance(settings: SettingsWrapper) -> None:
    # Balances here are set by each test (tokenbyte/settings_test.py starts accounts at $1000).
    settings.TOKENBYTE_STARTING_BALANCE = Decimal(0)


@pytest.fixture
def alice(client: Client) -> User:
    user = User.objects.create_user("alice@example.com", "pw-123456789-long")
    client.force_login(user)
    return user


def key(owner: User, name: str, **spec: object) -> ApiKey:
    return key_mint(owner=owner, spec=KeySpec(name=name, **spec)).key


def spend_text(page: str, key: ApiKey) -> str:
    """The words of the key's Spend cell, tags dropped."""
    row = page.split(f'id="key-{key.pk}"', 1)[1].split("</tr>", 1)[0]
    cell = row.split('data-label="Spend"', 1)[1].split(">", 1)[1].split("</td>", 1)[0]
    return " ".join(re.sub(r"<[^>]+>", "", cell).split()).replace(" ,", ",")


def day(moment: datetime) -> str:
    return f"{moment.day} {moment:%b}"


def test_a_budgeted_key_shows_its_windows_spend_and_reset(client: Client, alice: User) -> None:
    ledger_credit(account=alice, amount=Decimal("50"))
    monthly = key(alice, "monthly", budget=Decimal("10"))
    daily = key(alice, "daily", budget=Decimal("2"), budget_period="daily")
    lifetime = key(alice, "lifetime", budget=Decimal("100"), budget_period="never")
    open_ended = key(alice, "no budget")
    now = timezone.now()
    month_start, month_end = calendar_month(now)
    for k in (monthly, daily, lifetime, open_ended):
        charge(account_id=alice.pk, cost="3.2", started_at=now, key_id=k.pk)
    # Last month's spend counts for the lifetime budget only.
    charge(
        account_id=alice.pk, cost="1", started_at=month_start - timedelta(days=1), key_id=monthly.pk
    )
    charge(
        account_id=alice.pk,
        cost="1",
        started_at=month_start - timedelta(days=1),
        key_id=lifetime.pk,
    )
    page = client.get("/keys/").content.decode()
    tomorrow = budget_window("daily", now).resets_at
    assert tomorrow is not None
    assert spend_text(page, monthly) == f"$3.20 of $10.00 this month, resets {day(month_end)}"
    assert spend_text(page, daily) == f"$3.20 of $2.00 today, resets {day(tomorrow)}"
    assert spend_text(page, lifetime) == "$4.20 of $100.00 in total"
    assert spend_text(page, open_ended) == "$3.20 this month"  # no budget: no reset
    assert f'<time datetime="{month_end.isoformat()}"' in page
    edit = client.get(f"/keys/{monthly.pk}/").content.decode()
    assert "Spend this month" in edit
    assert f'data-spend="{Decimal("3.2"):.9f}"' in edit


def test_a_keys_spend_is_its_current_windows_only() -> None:
    owner = User.objects.create_user("owner@example.com")
    weekly = key(owner, "weekly", budget=Decimal("5"), budget_period="weekly")
    sunday = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
    charge(account_id=owner.pk, cost="0.75", started_at=sunday, key_id=weekly.pk)
    spend = keys_period_spend(keys=[weekly], now=sunday)[weekly.pk]
    assert (spend.spent, spend.period) == (Decimal("0.75"), "weekly")
    assert spend.resets_at == datetime(2026, 12, 7, tzinfo=UTC)
    monday = keys_period_spend(keys=[weekly], now=sunday + timedelta(hours=1))[weekly.pk]
    assert monday.spent == 0
    assert monday.resets_at == datetime(2026, 12, 14, tzinfo=UTC)


def test_the_dashboard_shows_the_balance(client: Client, alice: User) -> None:
    ledger_credit(account=alice, amount=Decimal("12.5"))
    page = client.get("/").content.decode()
    assert 'data-balance="12.500000000"' in page
    assert "$12.50" in page
    assert 'href="/billing/"' in page
    assert "Credit limit" not in page


def test_postpaid_shows_the_credit_limit(
    client: Client, alice: User, settings: SettingsWrapper
) -> None:
    settings.TOKENBYTE_BILLING_MODE = "postpaid"
    Balance.objects.filter(account=alice).update(credit_limit=Decimal("50"))
    charge(account_id=alice.pk, cost="8", started_at=timezone.now())
    for path in ("/", "/billing/"):
        page = client.get(path).content.decode()
        assert "-$8.00" in page, path
        assert "Credit limit $50.00" in page, path
        assert "$42.00 is left to spend" in page, path
        assert "data-low-balance" not in page, path  # postpaid: no low-balance banner


PAGES = ("/", "/keys/", "/keys/new/", "/billing/", "/settings/", "/models/", "/logs/")


def test_a_low_balance_shows_a_banner_on_every_page(client: Client, alice: User) -> None:
    ledger_credit(account=alice, amount=Decimal("0.4"))
    for path in PAGES:
        page = client.get(path).content.decode()
        assert 'data-low-balance="0.400000000"' in page, path
        assert "Your balance is $0.40, below $1.00" in page, path
        assert '<a href="/billing/">See billing</a>' in page, path


def test_no_banner_at_or_above_the_threshold_or_signed_out(
    client: Client, alice: User, settings: SettingsWrapper
) -> None:
    ledger_credit(account=alice, amount=Decimal("1"))
    assert "data-low-balance" not in client.get("/").content.decode()
    settings.TOKENBYTE_LOW_BALANCE = Decimal("1.000000001")
    assert "data-low-balance" in client.get("/").content.decode()
    client.logout()
    for path in ("/", "/models/"):
        assert "data-low-balance" not in client.get(path).content.decode()


def test_an_empty_balance_says_requests_are_refused(client: Client, alice: User) -> None:
    page = client.get("/keys/").content.decode()
    assert "Your balance is $0.00: requests are refused until it is topped up." in page


def test_the_banner_costs_one_query(
    alice: User, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    request = RequestFactory().get("/")
    request.user = alice
    banner = Template("{% load console %}{% low_balance_banner %}")
    with django_assert_num_queries(1):
        html = banner.render(Context({"request": request}))
    assert "data-low-balance" in html


def test_htmx_fragments_carry_no_banner(client: Client, alice: User) -> None:
    doomed = key(alice, "doomed")
    fragment = client.post(f"/keys/{doomed.pk}/revoke/", HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    assert "data-low-balance" not in fragment.content.decode()
