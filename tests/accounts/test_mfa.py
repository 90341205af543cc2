"""Two-factor sign-in: TOTP enrolment, then sign-in with a code computed here (RFC 6238, not
allauth's own helper), and single-use recovery codes."""

import time
from collections.abc import Callable
from http import HTTPStatus

import pytest
from allauth.mfa.models import Authenticator
from django.test import Client

from accounts.models import User
from tests.accounts.conftest import PASSWORD, fresh_totp, totp

pytestmark = pytest.mark.django_db


def sign_in(client: Client, user: User) -> str:
    response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    assert response.status_code == HTTPStatus.FOUND
    return str(response["Location"])


def signed_in(client: Client) -> bool:
    return client.get("/settings/").status_code == HTTPStatus.OK


def enrol_totp(client: Client, user: User) -> tuple[str, list[str]]:
    """Enrols TOTP through the pages; returns its secret and the recovery codes allauth made."""
    assert sign_in(client, user) == "/"
    # Changing 2FA asks for the password again, even right after signing in.
    response = client.get("/accounts/2fa/totp/activate/")
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith("/accounts/reauthenticate/")
    response = client.post(response["Location"], {"password": PASSWORD})
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/accounts/2fa/totp/activate/"
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == HTTPStatus.OK
    secret = str(page.context["form"].secret)
    assert b"data:image/svg+xml" in page.content  # the QR code, inline (CSP: img-src data:)

    wrong = client.post("/accounts/2fa/totp/activate/", {"code": "000000"})
    assert wrong.status_code == HTTPStatus.OK
    assert not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()

    response = client.post("/accounts/2fa/totp/activate/", {"code": fresh_totp(secret)})
    assert response.status_code == HTTPStatus.FOUND
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    codes_page = client.get("/accounts/2fa/recovery-codes/")
    assert codes_page.status_code == HTTPStatus.OK
    codes = list(codes_page.context["unused_codes"])
    assert all(code in codes_page.content.decode() for code in codes)
    client.post("/accounts/logout/")
    assert not signed_in(client)
    return secret, codes


def test_totp_enrolment_then_sign_in_needs_a_current_code(
    client: Client, make_user: Callable[..., User]
) -> None:
    user = make_user()
    secret, _ = enrol_totp(client, user)

    assert sign_in(client, user) == "/accounts/2fa/authenticate/"
    assert not signed_in(client)  # the password alone is not enough
    stale = totp(secret, time.time() - 300)
    response = client.post("/accounts/2fa/authenticate/", {"code": stale})
    assert response.status_code == HTTPStatus.OK
    assert not signed_in(client)

    response = client.post("/accounts/2fa/authenticate/", {"code": fresh_totp(secret)})
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/"
    assert signed_in(client)
    overview = client.get("/settings/")
    assert overview.context["methods"].has_totp
    assert overview.context["methods"].recovery_codes_left == 10


def test_recovery_codes_each_sign_in_once(client: Client, make_user: Callable[..., User]) -> None:
    user = make_user()
    _, codes = enrol_totp(client, user)
    assert len(codes) == 10

    assert sign_in(client, user) == "/accounts/2fa/authenticate/"
    response = client.post("/accounts/2fa/authenticate/", {"code": codes[0]})
    assert response.status_code == HTTPStatus.FOUND
    assert signed_in(client)
    client.post("/accounts/logout/")

    sign_in(client, user)
    reused = client.post("/accounts/2fa/authenticate/", {"code": codes[0]})
    assert reused.status_code == HTTPStatus.OK
    assert not signed_in(client)
    client.post("/accounts/2fa/authenticate/", {"code": codes[1]})
    assert signed_in(client)
    assert client.get("/settings/").context["methods"].recovery_codes_left == 8
