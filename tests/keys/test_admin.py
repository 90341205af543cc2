from http import HTTPStatus

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from keys.models import ApiKey
from keys.services import key_revoke
from tests.accounts.otp import force_admin_login
from tests.keys.conftest import Mint

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client: Client) -> Client:
    return force_admin_login(
        client, User.objects.create_superuser("ops@example.com", "correct-horse-battery")
    )


def change_data(key: ApiKey, **overrides: str) -> dict[str, str]:
    data = {
        "name": key.name,
        "note": key.note,
        "rpm": str(key.rpm or ""),
        "tpm": str(key.tpm or ""),
        "allowed_models": "\n".join(key.allowed_models),
        "max_request_cost": "",
        "budget": "",
        "budget_period": key.budget_period,
        "expires_at_0": "",
        "expires_at_1": "",
        "allowed_networks": "\n".join(key.allowed_networks),
    }
    data.update(overrides)
    return data


def test_the_changelist_finds_keys_by_owner_and_shows_limits(
    staff_client: Client, owner: User, mint: Mint
) -> None:
    minted = mint(owner, name="build bot", rpm=30)
    page = staff_client.get(reverse("admin:keys_apikey_changelist"), {"q": "owner@"})
    text = page.content.decode()
    assert "build bot" in text
    assert minted.key.prefix in text
    assert "30 RPM" in text
    assert minted.secret not in text
    assert minted.key.secret_hash not in text


def test_keys_cannot_be_added_or_deleted_in_the_admin(
    staff_client: Client, owner: User, mint: Mint
) -> None:
    key = mint(owner).key
    assert staff_client.get(reverse("admin:keys_apikey_add")).status_code == HTTPStatus.FORBIDDEN
    delete = staff_client.get(reverse("admin:keys_apikey_delete", args=[key.pk]))
    assert delete.status_code == HTTPStatus.FORBIDDEN


def test_an_admin_edit_goes_through_the_service(
    staff_client: Client, owner: User, mint: Mint
) -> None:
    key = mint(owner, name="bot").key
    url = reverse("admin:keys_apikey_change", args=[key.pk])
    bad = staff_client.post(url, change_data(key, allowed_models="No Such Model"))
    assert bad.status_code == HTTPStatus.OK
    assert "Unknown model" in bad.content.decode()
    response = staff_client.post(
        url,
        change_data(
            key, rpm="12", allowed_models="gpt-4o\nMistral Small", allowed_networks="10.1.0.0/16"
        ),
    )
    assert response.status_code == HTTPStatus.FOUND, response.content.decode()[:3000]
    key.refresh_from_db()
    assert key.rpm == 12
    assert key.allowed_models == ["GPT-4o", "Mistral Small"]  # normalised by the service
    assert key.allowed_networks == ["10.1.0.0/16"]


def test_the_revoke_action_revokes_the_selected_keys(
    staff_client: Client, owner: User, mint: Mint
) -> None:
    first, second, kept = (mint(owner, name=name).key for name in ("a", "b", "c"))
    response = staff_client.post(
        reverse("admin:keys_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    assert "Revoked 2 API key(s)." in response.content.decode()
    assert set(ApiKey.objects.filter(revoked_at__isnull=False)) == {first, second}
    kept.refresh_from_db()
    assert kept.revoked_at is None


def test_a_revoked_key_is_read_only_in_the_admin(
    staff_client: Client, owner: User, mint: Mint
) -> None:
    key = mint(owner, name="old").key
    key_revoke(key=key)
    url = reverse("admin:keys_apikey_change", args=[key.pk])
    page = staff_client.get(url)
    assert page.status_code == HTTPStatus.OK
    assert 'name="_save"' not in page.content.decode()
    assert staff_client.post(url, change_data(key, name="new")).status_code == HTTPStatus.FORBIDDEN
    key.refresh_from_db()
    assert key.name == "old"
