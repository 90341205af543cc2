import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from proxy.models import ModelCard, UpstreamCredential
from proxy.routing_version import routing_version_get
from proxy.services import catalog_sync, credential_upsert
from tests.accounts.otp import force_admin_login
from tests.fakes.mistral_api import FakeMistral
from tests.fakes.server import FakeServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client: Client) -> Client:
    admin = User.objects.create_superuser("ops@example.com", "correct-horse-battery")
    return force_admin_login(client, admin)  # the admin also needs a verified OTP device


def test_catalog_admin_lists_prices_and_filters(staff_client: Client) -> None:
    catalog_sync()
    page = staff_client.get(reverse("admin:proxy_modelcard_changelist"), {"provider": "anthropic"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Claude Sonnet 4.5" in html
    assert "GPT-4o" not in html
    assert "3.750000" in html  # the cache-write price column
    found = staff_client.get(reverse("admin:proxy_modelcard_changelist"), {"q": "haiku"})
    assert "Claude Haiku 4.5" in found.content.decode()


def test_credential_admin_shows_only_the_last_four_characters(staff_client: Client) -> None:
    raw = "sk-proj-VERYSECRETKEYMATERIAL-wxyz"
    credential, _ = credential_upsert(provider="openai", api_key=raw, name="main")
    for url in (
        reverse("admin:proxy_upstreamcredential_changelist"),
        reverse("admin:proxy_upstreamcredential_change", args=[credential.pk]),
    ):
        html = staff_client.get(url).content.decode()
        assert "…wxyz" in html or "wxyz" in html
        assert raw not in html
        assert "VERYSECRET" not in html
        assert credential.api_key_encrypted not in html


def test_credential_admin_add_encrypts_and_edit_keeps_the_key(staff_client: Client) -> None:
    response = staff_client.post(
        reverse("admin:proxy_upstreamcredential_add"),
        {
            "provider": "mistral",
            "name": "eu",
            "base_url": "",
            "api_key": "mistral-key-9876",
            "priority": "1",
            "weight": "2",
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    credential = UpstreamCredential.objects.get(name="eu")
    assert credential.get_api_key() == "mistral-key-9876"
    assert credential.api_key_encrypted != "mistral-key-9876"

    staff_client.post(
        reverse("admin:proxy_upstreamcredential_change", args=[credential.pk]),
        {
            "provider": "mistral",
            "name": "eu",
            "base_url": "",
            "api_key": "",
            "priority": "5",
            "weight": "2",
            "enabled": "on",
        },
    )
    credential.refresh_from_db()
    assert credential.priority == 5
    assert credential.get_api_key() == "mistral-key-9876"


def credential_form(**fields: str) -> dict[str, str]:
    return {
        "provider": "mistral",
        "name": "eu",
        "base_url": "",
        "api_key": "",
        "priority": "1",
        "weight": "1",
        "enabled": "on",
        **fields,
    }


def test_the_admin_checks_a_new_key_with_the_provider_as_the_cli_does(
    staff_client: Client,
) -> None:
    url = reverse("admin:proxy_upstreamcredential_add")
    with FakeServer(FakeMistral()) as fake:
        refused = staff_client.post(
            url, credential_form(base_url=fake.url, api_key="sk-wrong-0000", verify="on")
        )
        assert refused.status_code == 200  # the form again, with the provider's answer
        assert "rejected this API key" in refused.content.decode()
        assert fake.app.received[-1].path == "/v1/models"
        assert not UpstreamCredential.objects.exists()
        accepted = staff_client.post(
            url, credential_form(base_url=fake.url, api_key=fake.app.api_key, verify="on")
        )
        assert accepted.status_code == 302, accepted.content.decode()[:2000]
    assert UpstreamCredential.objects.get(name="eu").get_api_key() == fake.app.api_key
    placeholder = staff_client.post(url, credential_form(name="other", api_key="sk-ant-…"))
    assert "printable ASCII" in placeholder.content.decode()
    assert not UpstreamCredential.objects.filter(name="other").exists()


def test_admin_actions_go_through_the_services_and_move_the_routing_version(
    staff_client: Client,
) -> None:
    catalog_sync()
    card = ModelCard.objects.get(title="Mistral Small")
    credential, _ = credential_upsert(provider="mistral", api_key="mistral-key-1", name="eu")
    before = routing_version_get()
    staff_client.post(
        reverse("admin:proxy_modelcard_changelist"),
        {"action": "deactivate", "_selected_action": [card.pk]},
    )
    staff_client.post(
        reverse("admin:proxy_upstreamcredential_changelist"),
        {"action": "disable", "_selected_action": [credential.pk]},
    )
    card.refresh_from_db()
    credential.refresh_from_db()
    assert (card.active, card.source, credential.enabled) == (False, "manual", False)
    assert routing_version_get() >= before + 2


def test_editing_a_card_in_the_admin_takes_it_over_from_bootstrap(staff_client: Client) -> None:
    catalog_sync()
    card = ModelCard.objects.get(title="Mistral Small")
    data = {
        "title": card.title,
        "provider": card.provider,
        "upstream_id": card.upstream_id,
        "aliases": "[]",
        "type": card.type,
        "active": "on",
        "context_length": card.context_length,
        "max_output_tokens": card.max_output_tokens,
        "first_byte_timeout": "",
        "input_price": "0.2",
        "output_price": card.output_price,
        "cache_read_price": card.cache_read_price,
        "cache_write_price": card.cache_write_price,
    }
    response = staff_client.post(reverse("admin:proxy_modelcard_change", args=[card.pk]), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert catalog_sync().skipped == ["Mistral Small"]
    card.refresh_from_db()
    assert str(card.input_price) == "0.200000"
