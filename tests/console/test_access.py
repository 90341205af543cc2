"""Who may see what: every console URL but the public ones sends a signed-out visitor to the
login page; CSRF, security headers and the Content-Security-Policy hold everywhere."""

import re
import uuid
from http import HTTPStatus

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.resolvers import RegexPattern, RoutePattern

from accounts.middleware import POLICY
from accounts.models import User

PUBLIC = {"/", "/models/"}
SAMPLE_BY_CONVERTER = {
    "int": "7",
    "str": "x",
    "slug": "x",
    "path": "x/y",
    "uuid": str(uuid.UUID(int=7)),
}


def console_urls() -> list[str]:
    """One concrete path per named URL pattern, with sample values for its parameters."""
    paths: set[str] = set()

    def walk(patterns: list[URLPattern | URLResolver], namespace: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                walk(entry.url_patterns, inner)
            elif entry.name:
                pattern = entry.pattern
                if isinstance(pattern, RoutePattern):
                    kwargs = {
                        name: SAMPLE_BY_CONVERTER.get(type(conv).__name__.lower()[:-9], "7")
                        for name, conv in pattern.converters.items()
                    }
                else:
                    assert isinstance(pattern, RegexPattern)
                    kwargs = dict.fromkeys(pattern.regex.groupindex, "7")
                try:
                    paths.add(reverse(f"{namespace}{entry.name}", kwargs=kwargs))
                except Exception:  # noqa: S112 -- a sample the pattern refuses: another covers it
                    continue

    walk(get_resolver().url_patterns, "")
    return sorted(paths)


URLS = console_urls()


def test_the_url_map_covers_the_console() -> None:
    for path in ("/", "/models/", "/settings/", "/logs/", "/billing/", "/accounts/login/"):
        assert path in URLS
    assert any(path.startswith("/admin/") for path in URLS)


@pytest.mark.django_db
@pytest.mark.parametrize("path", URLS)
def test_signed_out_visitors_are_sent_to_sign_in(client: Client, path: str) -> None:
    response = client.get(path)
    if path in PUBLIC:
        assert response.status_code == HTTPStatus.OK
    elif path.startswith("/models/"):  # a card's page is public too (no card 7 here: 404)
        assert response.status_code == HTTPStatus.NOT_FOUND, path
    elif path.startswith("/admin/"):
        # The admin has its own login (password + OTP code); its login page is public.
        if path == "/admin/login/":
            assert response.status_code == HTTPStatus.OK
        elif path == "/admin/logout/":
            assert response["Location"] == "/admin/"  # Django's: then the login page
        else:
            assert response.status_code == HTTPStatus.FOUND, path
            assert response["Location"].startswith("/admin/login/?next=/admin/")
    elif path.startswith("/accounts/"):
        # allauth's own pages: public ones render, the rest send the visitor to sign in.
        assert response.status_code < HTTPStatus.INTERNAL_SERVER_ERROR
        if response.status_code == HTTPStatus.FOUND and "login" in response["Location"]:
            assert response["Location"].startswith("/accounts/login/")
    else:
        assert response.status_code == HTTPStatus.FOUND, path
        assert response["Location"] == f"/accounts/login/?next={path}"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/models/", "/settings/", "/logs/", "/billing/"])
def test_signed_in_users_see_every_console_page(client: Client, path: str) -> None:
    user = User.objects.create_user("reader@example.com", "pw-123456789-long")
    client.force_login(user)
    response = client.get(path)
    assert response.status_code == HTTPStatus.OK
    assert b"reader@example.com" in response.content
    for label in (b"Dashboard", b"API keys", b"Models", b"Logs", b"Billing", b"Settings"):
        assert label in response.content


@pytest.mark.django_db
def test_forms_without_a_csrf_token_are_refused() -> None:
    client = Client(enforce_csrf_checks=True)
    User.objects.create_user("csrf@example.com", "pw-123456789-long")
    response = client.post("/accounts/login/", {"login": "csrf@example.com", "password": "x"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    page = client.get("/accounts/login/")
    assert b'name="csrfmiddlewaretoken"' in page.content


@pytest.mark.django_db
def test_security_headers_with_debug_off(client: Client, settings: object) -> None:
    response = client.get("/models/", secure=True)
    assert response["Content-Security-Policy"] == POLICY
    assert "script-src 'self'" in POLICY
    assert "'unsafe-inline'" not in POLICY
    assert response["X-Frame-Options"] == "DENY"
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"

    User.objects.create_user("cookie@example.com", "pw-123456789-long")
    login = client.post(
        "/accounts/login/",
        {"login": "cookie@example.com", "password": "pw-123456789-long"},
        secure=True,
    )
    assert login.status_code == HTTPStatus.FOUND
    assert login.cookies["sessionid"]["secure"]
    assert login.cookies["sessionid"]["httponly"]
    assert Client().get("/accounts/login/", secure=True).cookies["csrftoken"]["secure"]


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I)
INLINE_STYLE = re.compile(r"<style\b|\sstyle=\"", re.I)


@pytest.mark.django_db
def test_pages_carry_no_inline_script_or_style(client: Client) -> None:
    """What the CSP would block in a browser: no inline <script>, <style> or style=""."""
    pages = ["/", "/models/", "/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]
    user = User.objects.create_user("inline@example.com", "pw-123456789-long")
    for path in pages:
        html = client.get(path).content.decode()
        assert not INLINE_SCRIPT.search(html), path
        assert not INLINE_STYLE.search(html), path
    client.force_login(user)
    for path in ["/", "/settings/", "/logs/", "/billing/", "/accounts/email/", "/accounts/2fa/"]:
        html = client.get(path).content.decode()
        assert not INLINE_SCRIPT.search(html), path
        assert not INLINE_STYLE.search(html), path


SIGNED_IN_ACCOUNT_PAGES = [
    "/accounts/email/",
    "/accounts/password/change/",
    "/accounts/2fa/",
    "/accounts/2fa/webauthn/",
    "/accounts/3rdparty/",
    "/accounts/logout/",
    "/accounts/reauthenticate/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("path", SIGNED_IN_ACCOUNT_PAGES)
def test_account_pages_render_in_the_settings_layout(client: Client, path: str) -> None:
    user = User.objects.create_user(f"{uuid.uuid4().hex[:8]}@example.com", "pw-123456789-long")
    client.force_login(user)
    response = client.get(path)
    assert response.status_code == HTTPStatus.OK, path
    html = response.content.decode()
    assert "/static/css/console.css" in html
    assert not INLINE_SCRIPT.search(html), path
    assert not INLINE_STYLE.search(html), path
