"""GitHub and Discord sign-in: full OAuth2 round trips against strict local fakes of each
provider's authorize, token and user endpoints. allauth talks to them over real HTTP (requests);
only the providers' URLs are pointed at the fake."""

import uuid
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount, SocialApp
from allauth.socialaccount.providers.discord.views import DiscordOAuth2Adapter
from allauth.socialaccount.providers.github.views import GitHubOAuth2Adapter
from django.core import mail
from django.test import Client

from accounts.models import User
from tests.accounts.conftest import PASSWORD, mail_code, settings_probe
from tests.accounts.fake_oauth import FakeOAuthServer, FakeProvider, FakeUser

pytestmark = pytest.mark.django_db

PROVIDERS = ("github", "discord")


@pytest.fixture
def fake_oauth(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOAuthServer]:
    def provider(name: str) -> FakeProvider:
        n = uuid.uuid4().int % 10**9
        return FakeProvider(
            name=name,
            client_id=f"{name}-client-{n}",
            client_secret=f"{name}-secret-{n}",
            user=FakeUser(id=n, login=f"ada{n}", email=f"ada-{n}@example.com"),
        )

    with FakeOAuthServer(provider("github"), provider("discord")) as server:
        for attr, path in (
            ("authorize_url", "/login/oauth/authorize"),
            ("access_token_url", "/login/oauth/access_token"),
            ("profile_url", "/user"),
            ("emails_url", "/user/emails"),
        ):
            monkeypatch.setattr(GitHubOAuth2Adapter, attr, server.url + path)
        for attr, path in (
            ("authorize_url", "/api/oauth2/authorize"),
            ("access_token_url", "/api/oauth2/token"),
            ("profile_url", "/api/users/@me"),
        ):
            monkeypatch.setattr(DiscordOAuth2Adapter, attr, server.url + path)
        yield server


@pytest.fixture
def social_apps(fake_oauth: FakeOAuthServer) -> None:
    """Registers both apps in the database, as an operator would in the admin."""
    for provider in (fake_oauth.github, fake_oauth.discord):
        SocialApp.objects.create(
            provider=provider.name,
            name=provider.name.title(),
            client_id=provider.client_id,
            secret=provider.client_secret,
        )


def round_trip(client: Client, fake: FakeOAuthServer, provider: str) -> Any:
    """Clicks the provider's button, consents at the fake, follows the callback; returns the
    callback's response as the Django client saw it."""
    start = client.post(f"/accounts/{provider}/login/", {"process": "login"})
    assert start.status_code == HTTPStatus.FOUND, start.content
    authorize_url = start["Location"]
    assert authorize_url.startswith(fake.url)
    consent = httpx.get(authorize_url, follow_redirects=False)
    assert consent.status_code == HTTPStatus.FOUND, consent.text
    callback = urlsplit(consent.headers["location"])
    assert callback.path == f"/accounts/{provider}/login/callback/"
    return client.get(f"{callback.path}?{callback.query}")


def fake_for(fake: FakeOAuthServer, provider: str) -> FakeProvider:
    return fake.github if provider == "github" else fake.discord


def signed_in_as(client: Client) -> str | None:
    response = client.get("/settings/")
    return str(response.context["user"].email) if response.status_code == HTTPStatus.OK else None


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_new_user_signs_up_with_the_providers_verified_email(
    client: Client, fake_oauth: FakeOAuthServer, social_apps: None, provider: str
) -> None:
    fake = fake_for(fake_oauth, provider)
    response = round_trip(client, fake_oauth, provider)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/"
    assert fake.log[:2] == ["authorize", "token"]

    user = User.objects.get(email=fake.user.email)
    assert signed_in_as(client) == fake.user.email
    assert EmailAddress.objects.get(user=user, email=fake.user.email).verified
    account = SocialAccount.objects.get(user=user)
    assert (account.provider, account.uid) == (provider, str(fake.user.id))
    assert not user.has_usable_password()
    assert mail.outbox == []  # no code: the provider vouched for the address


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_existing_user_with_that_email_is_linked_not_duplicated(
    client: Client,
    fake_oauth: FakeOAuthServer,
    social_apps: None,
    make_user: Callable[..., User],
    provider: str,
) -> None:
    fake = fake_for(fake_oauth, provider)
    existing = make_user(fake.user.email.upper())
    response = round_trip(client, fake_oauth, provider)
    assert response.status_code == HTTPStatus.FOUND

    assert User.objects.filter(email__iexact=fake.user.email).count() == 1
    assert SocialAccount.objects.get(provider=provider).user == existing
    assert signed_in_as(client) == existing.email
    existing.refresh_from_db()
    assert existing.check_password(PASSWORD)  # a verified owner keeps their password

    # The next sign-in finds the account by the link, not the email.
    client.post("/accounts/logout/")
    round_trip(client, fake_oauth, provider)
    assert signed_in_as(client) == existing.email
    assert User.objects.count() == 1


def test_a_squatted_unverified_account_loses_its_password_when_the_owner_signs_in(
    client: Client, fake_oauth: FakeOAuthServer, social_apps: None, make_user: Callable[..., User]
) -> None:
    # Someone signed up with the victim's address but could never verify it.
    squatter = make_user(fake_oauth.github.user.email, verified=False)
    response = round_trip(client, fake_oauth, "github")
    squatter.refresh_from_db()
    assert not squatter.has_usable_password()  # the squatter's password no longer works
    assert SocialAccount.objects.get(provider="github").user == squatter
    # The address was never proven on this side, so the usual code is still asked for.
    assert response["Location"] == "/accounts/confirm-email/"
    client.post("/accounts/confirm-email/", {"code": mail_code(squatter.email)})
    assert signed_in_as(client) == squatter.email
    assert User.objects.count() == 1


def test_an_unverified_provider_email_must_be_verified_by_code(
    client: Client, fake_oauth: FakeOAuthServer, social_apps: None
) -> None:
    fake_oauth.discord.user.verified = False
    email = fake_oauth.discord.user.email
    response = round_trip(client, fake_oauth, "discord")
    assert response["Location"] == "/accounts/confirm-email/"
    assert signed_in_as(client) is None
    client.post("/accounts/confirm-email/", {"code": mail_code(email)})
    assert signed_in_as(client) == email


def test_a_wrong_client_secret_signs_nobody_in(
    client: Client, fake_oauth: FakeOAuthServer, social_apps: None
) -> None:
    SocialApp.objects.filter(provider="github").update(secret="not-the-secret")
    response = round_trip(client, fake_oauth, "github")
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert b"Third-Party Login Failure" in response.content
    assert "token" not in fake_oauth.github.log
    assert signed_in_as(client) is None
    assert not User.objects.exists()


def test_buttons_show_only_for_configured_providers(
    client: Client, fake_oauth: FakeOAuthServer
) -> None:
    page = client.get("/accounts/login/").content.decode()
    assert 'data-provider="github"' not in page
    assert 'data-provider="discord"' not in page

    SocialApp.objects.create(provider="github", name="GitHub", client_id="x", secret="y")
    page = client.get("/accounts/login/").content.decode()
    assert 'data-provider="github"' in page
    assert "Continue with GitHub" in page
    assert 'data-provider="discord"' not in page
    assert "Continue with GitHub" in client.get("/accounts/signup/").content.decode()


def test_env_credentials_configure_the_provider() -> None:
    providers = settings_probe(
        "settings.SOCIALACCOUNT_PROVIDERS", GITHUB_CLIENT_ID="gh-id", GITHUB_CLIENT_SECRET="gh-s"
    )
    assert isinstance(providers, dict)
    assert providers["github"]["APPS"] == [{"client_id": "gh-id", "secret": "gh-s", "key": ""}]
    assert "APPS" not in providers["discord"]
    assert "APPS" not in settings_probe("settings.SOCIALACCOUNT_PROVIDERS")["github"]


def test_credentials_in_settings_show_the_button_too(client: Client, settings: Any) -> None:
    settings.SOCIALACCOUNT_PROVIDERS = {
        "github": {"SCOPE": ["read:user", "user:email"]},
        "discord": {"APPS": [{"client_id": "d-id", "secret": "d-secret", "key": ""}]},
    }
    page = client.get("/accounts/login/").content.decode()
    assert 'data-provider="discord"' in page
    assert 'data-provider="github"' not in page
    start = client.post("/accounts/discord/login/", {"process": "login"})
    assert start.status_code == HTTPStatus.FOUND
    assert "client_id=d-id" in start["Location"]
