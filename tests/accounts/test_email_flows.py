"""Email + password accounts through allauth's real views: sign-up with a mailed code, sign-in,
sign-out, password reset and email management."""

from collections.abc import Callable
from http import HTTPStatus

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client

from accounts.models import User
from tests.accounts.conftest import PASSWORD, mail_code, mail_link

pytestmark = pytest.mark.django_db


def signed_in_email(client: Client) -> str | None:
    response = client.get("/settings/")
    if response.status_code != HTTPStatus.OK:
        return None
    return str(response.context["user"].email)


def test_signup_needs_the_mailed_code_then_signs_in(
    client: Client, unique_email: Callable[[], str]
) -> None:
    email = unique_email()
    response = client.post("/accounts/signup/", {"email": email, "password1": PASSWORD})
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/accounts/confirm-email/"

    user = User.objects.get(email=email)
    assert not EmailAddress.objects.get(user=user).verified
    assert signed_in_email(client) is None  # mandatory verification: not signed in yet
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject.startswith("[TokenByte] ")

    page = client.get("/accounts/confirm-email/")
    assert page.status_code == HTTPStatus.OK
    assert b'name="code"' in page.content

    wrong = client.post("/accounts/confirm-email/", {"code": "WRONG1"})
    assert wrong.status_code == HTTPStatus.OK
    assert not EmailAddress.objects.get(user=user).verified

    response = client.post("/accounts/confirm-email/", {"code": mail_code(email)})
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/"
    assert EmailAddress.objects.get(user=user).verified
    assert signed_in_email(client) == email
    dashboard = client.get("/")
    assert b"Dashboard" in dashboard.content
    assert b"Create your first API key" in dashboard.content


def test_signup_refuses_a_taken_email_without_creating_a_second_user(
    client: Client, make_user: Callable[..., User]
) -> None:
    user = make_user()
    response = client.post(
        "/accounts/signup/", {"email": user.email.upper(), "password1": PASSWORD}
    )
    # allauth prevents account enumeration: the page looks the same, the owner gets a mail.
    assert User.objects.filter(email__iexact=user.email).count() == 1
    assert response.status_code in (HTTPStatus.OK, HTTPStatus.FOUND)
    assert any(user.email in m.to and "already" in str(m.body).lower() for m in mail.outbox)


def test_signup_rejects_a_weak_password(client: Client, unique_email: Callable[[], str]) -> None:
    email = unique_email()
    response = client.post("/accounts/signup/", {"email": email, "password1": "password"})
    assert response.status_code == HTTPStatus.OK
    assert b"too common" in response.content
    assert not User.objects.filter(email=email).exists()


def test_login_and_logout(client: Client, make_user: Callable[..., User]) -> None:
    user = make_user()
    bad = client.post("/accounts/login/", {"login": user.email, "password": "nope-nope-nope"})
    assert bad.status_code == HTTPStatus.OK
    assert signed_in_email(client) is None

    response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/"
    assert signed_in_email(client) == user.email

    # Sign-out is a POST (a GET only shows the confirmation page).
    assert client.get("/accounts/logout/").status_code == HTTPStatus.OK
    assert signed_in_email(client) == user.email
    response = client.post("/accounts/logout/")
    assert response.status_code == HTTPStatus.FOUND
    assert signed_in_email(client) is None


def test_login_with_an_unverified_email_sends_a_code_instead(
    client: Client, make_user: Callable[..., User]
) -> None:
    user = make_user(verified=False)
    response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/accounts/confirm-email/"
    assert signed_in_email(client) is None
    client.post("/accounts/confirm-email/", {"code": mail_code(user.email)})
    assert signed_in_email(client) == user.email


def test_failed_logins_are_rate_limited(client: Client, make_user: Callable[..., User]) -> None:
    user = make_user()
    pages = [
        client.post("/accounts/login/", {"login": user.email, "password": f"wrong-{i}"})
        for i in range(6)
    ]
    assert b"Too many failed login attempts" not in pages[0].content
    assert b"Too many failed login attempts" in pages[-1].content
    # Even the right password is refused while the account's failure budget is spent.
    response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    assert b"Too many failed login attempts" in response.content
    assert signed_in_email(client) is None


def test_password_reset_by_mailed_link(client: Client, make_user: Callable[..., User]) -> None:
    user = make_user()
    response = client.post("/accounts/password/reset/", {"email": user.email})
    assert response.status_code == HTTPStatus.FOUND
    link = mail_link(user.email, "/accounts/password/reset/key/")

    form = client.get(link, follow=True)
    assert form.status_code == HTTPStatus.OK
    new_password = "a-brand-new-passphrase-77"
    response = client.post(
        form.redirect_chain[-1][0] if form.redirect_chain else link,
        {"password1": new_password, "password2": new_password},
    )
    assert response.status_code == HTTPStatus.FOUND
    user.refresh_from_db()
    assert user.check_password(new_password)

    assert (
        client.post("/accounts/login/", {"login": user.email, "password": PASSWORD}).status_code
        == HTTPStatus.OK
    )
    client.post("/accounts/login/", {"login": user.email, "password": new_password})
    assert signed_in_email(client) == user.email


def test_password_reset_for_an_unknown_email_reveals_nothing(
    client: Client, unique_email: Callable[[], str]
) -> None:
    email = unique_email()
    response = client.post("/accounts/password/reset/", {"email": email})
    assert response.status_code == HTTPStatus.FOUND
    assert not User.objects.filter(email=email).exists()


def test_email_management_add_verify_make_primary_remove(
    client: Client, make_user: Callable[..., User], unique_email: Callable[[], str]
) -> None:
    user = make_user()
    client.force_login(user)
    second = unique_email()

    response = client.post("/accounts/email/", {"action_add": "", "email": second})
    assert response.status_code == HTTPStatus.FOUND
    # With code verification the address joins the account only once its code is entered.
    assert response["Location"] == "/accounts/confirm-email/"
    assert not EmailAddress.objects.filter(user=user, email=second, verified=True).exists()

    response = client.post("/accounts/confirm-email/", {"code": mail_code(second)})
    assert response.status_code == HTTPStatus.FOUND
    assert EmailAddress.objects.get(user=user, email=second).verified
    assert EmailAddress.objects.get_primary(user).email == user.email

    client.post("/accounts/email/", {"action_primary": "", "email": second})
    user.refresh_from_db()
    assert user.email == second
    assert EmailAddress.objects.get_primary(user).email == second

    first = EmailAddress.objects.get(user=user, primary=False)
    client.post("/accounts/email/", {"action_remove": "", "email": first.email})
    assert list(EmailAddress.objects.filter(user=user).values_list("email", flat=True)) == [second]

    page = client.get("/settings/")
    assert second.encode() in page.content
