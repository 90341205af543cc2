"""/billing/: the signed-in user's balance and ledger only, keyset pages, the CSV export."""

import csv
import io
from decimal import Decimal

import pytest
from django.test import Client

from accounts.models import User
from billing.models import EntryKind, LedgerEntry
from billing.selectors import LEDGER_PAGE_SIZE
from billing.services import ledger_credit

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(client: Client) -> User:
    user = User.objects.create_user("alice@example.com", "pw-123456789-long")
    client.force_login(user)
    return user


def test_the_page_shows_the_balance_and_only_the_users_own_entries(
    client: Client, alice: User
) -> None:
    bob = User.objects.create_user("bob@example.com")
    ledger_credit(account=alice, amount=Decimal("10"), note="welcome credit")
    ledger_credit(account=alice, amount=Decimal("-2.5"), note="goodwill reversal")
    ledger_credit(account=bob, amount=Decimal("99"), note="bob's top-up")
    page = client.get("/billing/").content.decode()
    assert 'data-balance="7.500000000"' in page
    assert "$7.50" in page
    assert "welcome credit" in page
    assert "-$2.50" in page
    assert "bob's top-up" not in page
    assert "$99.00" not in page
    assert "No charges yet" not in page


def test_keyset_pages_walk_the_whole_ledger_once(client: Client, alice: User) -> None:
    for number in range(LEDGER_PAGE_SIZE + 7):
        ledger_credit(account=alice, amount=Decimal(1), note=f"top-up #{number}")
    first = client.get("/billing/").content.decode()
    seen = [f"top-up #{n}" for n in range(LEDGER_PAGE_SIZE + 7) if f"top-up #{n}<" in first]
    assert len(seen) == LEDGER_PAGE_SIZE
    assert f"top-up #{LEDGER_PAGE_SIZE + 6}<" in first  # newest first
    cursor = first.split('href="?before=')[1].split('"')[0]
    second = client.get("/billing/", {"before": cursor}).content.decode()
    rest = [f"top-up #{n}" for n in range(LEDGER_PAGE_SIZE + 7) if f"top-up #{n}<" in second]
    assert sorted(seen + rest) == sorted(f"top-up #{n}" for n in range(LEDGER_PAGE_SIZE + 7))
    assert 'href="?before=' not in second  # the last page
    assert client.get("/billing/", {"before": "not-a-number"}).status_code == 200


def test_the_csv_export_has_every_entry_and_defuses_formulas(client: Client, alice: User) -> None:
    ledger_credit(account=alice, amount=Decimal("5"), note="=HYPERLINK(evil)")
    LedgerEntry.objects.create(
        account=alice,
        amount=Decimal("-0.000123457"),
        kind=EntryKind.CHARGE,
        event_id="evt-1",
        request_id="req-abc",
    )
    response = client.get("/billing/ledger.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response).decode())))
    assert rows[0] == ["created_at", "kind", "amount_usd", "note", "request_id", "event_id"]
    assert rows[1][1:] == ["charge", "-0.000123457", "", "req-abc", "evt-1"]
    assert rows[2][1:4] == ["topup", "5.00", "'=HYPERLINK(evil)"]
    assert len(rows) == 3


def test_signed_out_visitors_are_sent_to_sign_in(client: Client) -> None:
    for path in ("/billing/", "/billing/ledger.csv"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
