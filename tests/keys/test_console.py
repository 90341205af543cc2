from datetime import UTC, datetime
from decimal import Decimal
from http import HTTPStatus
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from keys.models import ApiKey
from keys.services import key_revoke
from tests.keys.conftest import Mint

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def form_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "ci runner",
        "rpm": "60",
        "tpm": "100000",
        "allowed_models": ["GPT-4o", "Claude Sonnet 4.5"],
        "max_request_cost": "0.25",
        "budget": "50",
        "budget_period": "weekly",
        "expires_at": "2031-01-02T03:04:05",
        "allowed_networks": "10.0.0.0/8\n2001:db8::/32",
        "note": "nightly builds",
    }
    data.update(overrides)
    return {name: value for name, value in data.items() if value is not None}


def html(response: Any) -> str:
    return str(response.content.decode())


@pytest.mark.parametrize("name", ["keys:list", "keys:new"])
def test_pages_need_a_signed_in_user(client: Client, name: str) -> None:
    response = client.get(reverse(name))
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith("/accounts/login/?next=")


def test_the_list_shows_each_key_with_its_limits_and_spend(
    owner_client: Client, owner: User, mint: Mint
) -> None:
    mint(owner, name="laptop", rpm=60, budget=Decimal("50"), allowed_models=("GPT-4o",))
    revoked = mint(owner, name="old one").key
    key_revoke(key=revoked)
    page = html(owner_client.get(reverse("keys:list")))
    assert "laptop" in page
    assert ApiKey.objects.get(name="laptop").prefix + "…" in page
    assert "60 RPM" in page
    assert "GPT-4o" in page
    assert "$0.00 of $50.00" in page
    assert "this month" in page
    assert "old one" in page
    assert "revoked" in page
    assert page.index("laptop") < page.index("old one")  # usable keys first
    assert 'href="/keys/new/"' in page


def test_the_new_key_form_offers_every_limit_and_a_searchable_model_list(
    owner_client: Client,
    loaded_catalog: None,
) -> None:
    page = html(owner_client.get(reverse("keys:new")))
    for field in (
        "name",
        "rpm",
        "tpm",
        "max_request_cost",
        "budget",
        "budget_period",
        "expires_at",
        "allowed_networks",
        "note",
    ):
        assert f'name="{field}"' in page, field
    assert "data-model-filter" in page
    assert 'value="Claude Sonnet 4.5"' in page
    assert 'value="text-embedding-3-small"' in page
    assert "keys/keys.js" in page


def test_creating_a_key_reveals_it_once_with_ready_snippets(
    owner_client: Client, owner: User, loaded_catalog: None
) -> None:
    response = owner_client.post(reverse("keys:new"), form_data())
    assert response.status_code == HTTPStatus.OK
    assert "no-store" in response["Cache-Control"]
    key = ApiKey.objects.get()
    assert key.owner == owner
    assert (key.name, key.rpm, key.tpm, key.note) == ("ci runner", 60, 100000, "nightly builds")
    assert key.allowed_models == ["GPT-4o", "Claude Sonnet 4.5"]
    assert (key.max_request_cost, key.budget) == (Decimal("0.25"), Decimal("50"))
    assert key.budget_period == "weekly"
    assert key.expires_at == datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert key.allowed_networks == ["10.0.0.0/8", "2001:db8::/32"]
    page = html(response)
    secret = response.context["secret"]
    assert secret.startswith(key.prefix)
    assert page.count(secret) == 3  # the panel, the curl and the Python snippets
    assert 'id="new-key-secret"' in page
    assert 'data-copy-from="new-key-secret"' in page
    assert "curl http://testserver/v1/chat/completions" in page
    assert f"Authorization: Bearer {secret}" in page
    assert "&quot;model&quot;: &quot;GPT-4o&quot;" in page
    assert "base_url=&quot;http://testserver/v1&quot;" in page
    assert f"api_key=&quot;{secret}&quot;" in page


def test_bad_input_is_shown_on_the_form_and_creates_nothing(
    owner_client: Client, loaded_catalog: None
) -> None:
    response = owner_client.post(
        reverse("keys:new"),
        form_data(
            name="",
            allowed_networks="10.0.0.0/33",
            expires_at="2001-01-01T00:00:00",
            budget="0",
            allowed_models=["Not A Model"],
        ),
    )
    assert response.status_code == HTTPStatus.OK
    errors = response.context["form"].errors
    assert set(errors) >= {"name", "allowed_networks", "expires_at", "allowed_models"}
    assert "10.0.0.0/33" in html(response)
    assert not ApiKey.objects.exists()
    service_refused = owner_client.post(reverse("keys:new"), form_data(budget="0"))
    assert "positive amount" in str(service_refused.context["form"].errors["budget"])
    assert not ApiKey.objects.exists()


def test_with_htmx_the_form_and_the_reveal_come_back_as_fragments(
    owner_client: Client, loaded_catalog: None
) -> None:
    invalid = owner_client.post(reverse("keys:new"), form_data(name=""), headers=HTMX)
    assert invalid.status_code == HTTPStatus.OK
    assert "<html" not in html(invalid)
    assert 'id="key-form"' in html(invalid)
    assert 'hx-post="/keys/new/"' in html(invalid)  # the form still swaps itself
    created = owner_client.post(reverse("keys:new"), form_data(), headers=HTMX)
    page = html(created)
    assert "<html" not in page
    assert 'id="key-reveal"' in page
    assert created.context["secret"] in page
    assert "no-store" in created["Cache-Control"]
    # One URL, two answers: a cache must key the form on the header that chooses.
    fragment = owner_client.get(reverse("keys:new"), headers=HTMX)
    whole = owner_client.get(reverse("keys:new"))
    assert "<html" not in html(fragment)
    assert "<html" in html(whole)
    assert "HX-Request" in fragment["Vary"]
    assert "HX-Request" in whole["Vary"]


def test_editing_a_key_changes_its_limits(owner_client: Client, owner: User, mint: Mint) -> None:
    minted = mint(owner, name="laptop", rpm=5, allowed_models=("GPT-4o",))
    url = reverse("keys:edit", args=[minted.key.pk])
    form = html(owner_client.get(url))
    assert 'value="laptop"' in form
    assert 'value="GPT-4o" checked' in form
    assert minted.secret not in form
    response = owner_client.post(
        url, form_data(name="desktop", rpm="", allowed_models=["Mistral Small"])
    )
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("keys:list")
    key = ApiKey.objects.get()
    assert (key.name, key.rpm, key.allowed_models) == ("desktop", None, ["Mistral Small"])
    assert "Saved “desktop”" in html(owner_client.get(response["Location"]))


def test_an_edit_keeps_a_past_expiry_it_did_not_touch(
    owner_client: Client, owner: User, mint: Mint
) -> None:
    expired = datetime(2020, 1, 1, tzinfo=UTC)
    key = mint(owner, expires_at=expired).key
    response = owner_client.post(
        reverse("keys:edit", args=[key.pk]),
        form_data(expires_at="2020-01-01T00:00:00", name="renamed"),
    )
    assert response.status_code == HTTPStatus.FOUND
    key.refresh_from_db()
    assert (key.name, key.expires_at) == ("renamed", expired)


def test_a_revoked_key_is_shown_read_only(owner_client: Client, owner: User, mint: Mint) -> None:
    key = key_revoke(key=mint(owner, name="gone").key)
    url = reverse("keys:edit", args=[key.pk])
    page = html(owner_client.get(url))
    assert "was revoked on" in page
    assert "<form" not in page.split("<main", 1)[-1].split("</main>", 1)[0]
    owner_client.post(url, form_data(name="resurrected"))
    key.refresh_from_db()
    assert key.name == "gone"


def test_rotating_asks_first_then_reveals_a_new_secret(
    owner_client: Client, owner: User, mint: Mint
) -> None:
    old = mint(owner, name="prod", rpm=9)
    url = reverse("keys:rotate", args=[old.key.pk])
    confirm = html(owner_client.get(url))
    assert "Rotate “prod”?" in confirm
    assert old.key.prefix in confirm
    old.key.refresh_from_db()
    assert old.key.revoked_at is None  # asking changes nothing
    response = owner_client.post(url)
    assert response.status_code == HTTPStatus.OK
    assert "no-store" in response["Cache-Control"]
    new = ApiKey.objects.get(revoked_at__isnull=True)
    assert new.rotated_from_id == old.key.pk
    assert new.rpm == 9
    secret = response.context["secret"]
    assert secret != old.secret
    assert secret in html(response)
    old.key.refresh_from_db()
    assert old.key.revoked_at is not None


def test_revoking_asks_first_then_revokes(owner_client: Client, owner: User, mint: Mint) -> None:
    key = mint(owner, name="ci").key
    url = reverse("keys:revoke", args=[key.pk])
    assert "Revoke “ci”?" in html(owner_client.get(url))
    key.refresh_from_db()
    assert key.revoked_at is None
    response = owner_client.post(url)
    assert response.status_code == HTTPStatus.FOUND
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert "Revoked “ci”" in html(owner_client.get(response["Location"]))


def test_revoking_with_htmx_returns_the_updated_row(
    owner_client: Client, owner: User, mint: Mint
) -> None:
    key = mint(owner, name="ci").key
    response = owner_client.post(reverse("keys:revoke", args=[key.pk]), headers=HTMX)
    row = html(response)
    assert row.strip().startswith(f'<tr id="key-{key.pk}" class="is-revoked">')
    assert "revoked" in row
    assert "hx-post" not in row  # no more actions on a revoked key


VIEWS = [
    ("get", "keys:edit"),
    ("post", "keys:edit"),
    ("get", "keys:rotate"),
    ("post", "keys:rotate"),
    ("get", "keys:revoke"),
    ("post", "keys:revoke"),
]


@pytest.mark.parametrize(("method", "name"), VIEWS)
def test_another_user_gets_404_on_every_key_view_and_changes_nothing(
    client: Client, owner: User, stranger: User, mint: Mint, method: str, name: str
) -> None:
    minted = mint(owner, name="private", rpm=3)
    client.force_login(stranger)
    url = reverse(name, args=[minted.key.pk])
    response = getattr(client, method)(url, form_data(name="hijacked"))
    assert response.status_code == HTTPStatus.NOT_FOUND
    key = ApiKey.objects.get()
    assert (key.name, key.rpm, key.revoked_at) == ("private", 3, None)
    assert ApiKey.objects.count() == 1
    assert "private" not in html(client.get(reverse("keys:list")))


def test_the_secret_is_on_no_page_after_the_reveal(
    owner_client: Client, loaded_catalog: None
) -> None:
    secret = owner_client.post(reverse("keys:new"), form_data()).context["secret"]
    key = ApiKey.objects.get()
    for url in (
        reverse("keys:list"),
        reverse("keys:edit", args=[key.pk]),
        reverse("keys:rotate", args=[key.pk]),
        reverse("keys:revoke", args=[key.pk]),
    ):
        page = html(owner_client.get(url))
        assert secret not in page, url
        assert secret[11:] not in page, url


def test_snippets_for_a_key_that_allows_every_model_use_a_common_one(
    owner_client: Client, loaded_catalog: None
) -> None:
    response = owner_client.post(reverse("keys:new"), form_data(allowed_models=[]))
    assert ApiKey.objects.get().allowed_models == []
    assert "model=&quot;GPT-4o&quot;" in html(response)
