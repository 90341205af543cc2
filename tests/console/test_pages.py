"""What the console pages show: the landing page's snippets, the dashboard, the public model
catalog and its htmx filter, settings, and the empty states of pages later features fill."""

from decimal import Decimal
from http import HTTPStatus
from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from accounts.templatetags.console import tokens, usd
from proxy.models import ModelCard
from proxy.services import catalog_sync

pytestmark = pytest.mark.django_db


@pytest.fixture
def cards() -> None:
    catalog_sync()


def test_landing_snippets_use_this_servers_base_url(client: Client, cards: None) -> None:
    page = client.get("/", HTTP_HOST="localhost:8123").content.decode()
    assert "Start in three steps" in page
    for step in ("Create an account", "Mint an API key", "Fire your first request"):
        assert step in page
    assert "curl http://localhost:8123/v1/chat/completions" in page
    assert 'base_url="http://localhost:8123/v1"' in page.replace("&quot;", '"')  # Python
    assert 'baseURL: "http://localhost:8123/v1"' in page.replace("&quot;", '"')  # JavaScript
    assert "Claude Sonnet 4.5" in page  # a real catalog title
    assert "/accounts/signup/" in page

    secure = client.get("/", secure=True, HTTP_HOST="localhost").content.decode()
    assert "https://localhost/v1" in secure


def test_landing_picks_an_active_model_for_the_snippets(client: Client, cards: None) -> None:
    ModelCard.objects.filter(title__in=["Claude Sonnet 4.5", "GPT-4o"]).update(active=False)
    page = client.get("/").content.decode().replace("&quot;", '"')
    assert 'model="Gemini 2.5 Flash"' in page


def test_dashboard_for_a_new_user_is_a_useful_empty_state(client: Client, cards: None) -> None:
    user = User.objects.create_user("new@example.com", "pw-123456789-long")
    client.force_login(user)
    page = client.get("/", HTTP_HOST="localhost:8000").content.decode()
    assert "Dashboard" in page
    assert "Three steps" not in page
    assert "Create your first API key" in page
    assert 'href="/keys/new/"' in page
    assert "No requests yet" in page
    assert "Set up 2FA" in page  # not protected yet
    assert 'data-copy="http://localhost:8000/v1"' in page


def test_models_page_lists_every_active_card(client: Client, cards: None) -> None:
    ModelCard.objects.filter(title="GPT-4o mini").update(active=False)
    response = client.get("/models/")
    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()
    active = ModelCard.objects.filter(active=True)
    assert len(response.context["cards"]) == active.count() > 30
    for card in active:
        assert f'data-model="{card.title}"' in page
        assert f'data-copy="{card.title}"' in page  # the copy button copies the exact title
    assert 'data-model="GPT-4o mini"' not in page

    sonnet = active.get(title="Claude Sonnet 4.5")
    row = page[page.index('data-model="Claude Sonnet 4.5"') :].split("</tr>")[0]
    assert "Anthropic" in row
    assert usd(sonnet.input_price) in row
    assert usd(sonnet.output_price) in row
    assert tokens(sonnet.context_length) in row
    assert "Tools" in row
    assert "Vision" in row


@pytest.mark.parametrize(
    ("query", "provider", "expected"),
    [
        ("sonnet 4.5", "", {"Claude Sonnet 4.5"}),
        # the upstream id finds the card (and the cards whose ids begin with it)
        (
            "gpt-4o-mini",
            "",
            {"GPT-4o mini", "GPT-4o mini Search Preview", "GPT-4o mini Audio Preview"},
        ),
        ("EMBED", "mistral", {"Mistral Embed", "Codestral Embed"}),
        ("", "anthropic", None),
        ("no such model", "", set()),
    ],
)
def test_models_filter(
    client: Client, cards: None, query: str, provider: str, expected: set[str] | None
) -> None:
    response = client.get("/models/", {"q": query, "provider": provider})
    titles = {card.title for card in response.context["cards"]}
    if expected is None:
        assert titles == set(
            ModelCard.objects.filter(provider=provider, active=True).values_list("title", flat=True)
        )
    else:
        assert titles == expected
    if expected == set():
        assert "No models match" in response.content.decode()


def test_models_htmx_request_gets_only_the_results_fragment(client: Client, cards: None) -> None:
    full = client.get("/models/", {"q": "claude"})
    fragment = client.get("/models/", {"q": "claude"}, HTTP_HX_REQUEST="true")
    assert fragment.status_code == HTTPStatus.OK
    html = fragment.content.decode()
    assert html.lstrip().startswith('<div id="model-results">')
    assert "<html" not in html
    assert "<nav" not in html
    assert 'data-model="Claude Sonnet 4.5"' in html
    assert 'data-model="GPT-4o"' not in html
    assert html.strip() in full.content.decode()  # the same markup as in the full page
    assert "HX-Request" in fragment["Vary"]


def test_settings_show_only_the_users_own_methods(client: Client) -> None:
    from allauth.account.models import EmailAddress

    alice = User.objects.create_user("alice@example.com", "pw-123456789-long")
    bob = User.objects.create_user("bob@example.com", "pw-123456789-long")
    EmailAddress.objects.create(user=alice, email=alice.email, primary=True, verified=True)
    EmailAddress.objects.create(user=bob, email=bob.email, primary=True, verified=False)
    client.force_login(alice)
    page = client.get("/settings/").content.decode()
    assert "alice@example.com" in page
    assert "bob@example.com" not in page
    for heading in ("Email addresses", "Password", "Passkeys", "Two-factor", "Connected accounts"):
        assert heading in page


@pytest.mark.parametrize(
    ("path", "empty"), [("/logs/", "No requests yet"), ("/billing/", "No charges yet")]
)
def test_placeholder_pages_explain_what_will_appear(
    client: Client, path: str, empty: str, settings: Any
) -> None:
    settings.TOKENBYTE_STARTING_BALANCE = Decimal(0)  # an account with no entries at all
    client.force_login(User.objects.create_user("p@example.com", "pw-123456789-long"))
    page = client.get(path).content.decode()
    assert empty in page
    assert 'href="/keys/new/"' in page


def test_allauth_pages_use_the_console_layout(client: Client) -> None:
    for path in ("/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"):
        page = client.get(path).content.decode()
        assert 'class="card auth-card"' in page, path
        assert "/static/css/console.css" in page
        assert 'class="btn btn-primary"' in page
    signup_by_passkey = client.get("/accounts/signup/passkey/").content.decode()
    assert 'class="card auth-card"' in signup_by_passkey


def test_unknown_pages_get_the_console_404(client: Client) -> None:
    response = client.get("/no-such-page/")
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert b"We could not find that page" in response.content


def test_price_and_token_formatting() -> None:
    assert usd(Decimal("3.000000")) == "$3.00"
    assert usd(Decimal("0.075000")) == "$0.075"
    assert usd(Decimal("0.0375")) == "$0.0375"
    assert usd(Decimal(15)) == "$15.00"
    assert usd(None) == "—"
    assert tokens(200_000) == "200K"
    assert tokens(1_048_576) == "1.05M"
    assert tokens(1_000_000) == "1M"
    assert tokens(8_192) == "8.2K"
    assert tokens(512) == "512"
    assert tokens(None) == "—"
