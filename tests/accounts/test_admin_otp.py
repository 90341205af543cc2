"""The Django admin needs a verified django-otp TOTP device on top of a staff password."""

import base64
import time
from collections.abc import Callable
from http import HTTPStatus

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User
from accounts.services import admin_totp_enrol
from tests.accounts.conftest import PASSWORD, fresh_totp
from tests.accounts.otp import force_admin_login
from tests.conftest import manage, manage_env


def device_secret(device: TOTPDevice) -> str:
    return base64.b32encode(device.bin_key).decode()


def admin_login(client: Client, user: User, token: str) -> str:
    """Posts the admin's login form; returns the page's error text (empty on success)."""
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": user.email, "password": PASSWORD, "otp_token": token},
    )
    if response.status_code == HTTPStatus.FOUND:
        return ""
    return str(response.context["form"].errors)


@pytest.mark.django_db
def test_signed_out_visitors_are_sent_to_the_admin_login(client: Client) -> None:
    response = client.get("/admin/")
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith("/admin/login/")
    login = client.get("/admin/login/")
    assert login.status_code == HTTPStatus.OK
    assert b'name="otp_token"' in login.content


@pytest.mark.django_db
def test_staff_without_a_device_cannot_reach_the_admin(
    client: Client, make_user: Callable[..., User]
) -> None:
    staff = make_user(is_staff=True, is_superuser=True)
    admin_login(client, staff, "123456")
    assert client.get("/admin/").status_code == HTTPStatus.FOUND

    # Signed in through the console (even with a password) is not verified for the admin.
    client.force_login(staff)
    assert client.get("/", follow=False).status_code == HTTPStatus.OK
    response = client.get("/admin/")
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_staff_with_a_device_reaches_the_admin_with_a_current_code(
    client: Client, make_user: Callable[..., User]
) -> None:
    staff = make_user(is_staff=True, is_superuser=True)
    device = admin_totp_enrol(user=staff)

    assert "Invalid token" in admin_login(client, staff, "000000")
    assert client.get("/admin/").status_code == HTTPStatus.FOUND
    # django-otp throttles a device after a failure (1 s, then doubling).
    time.sleep(1.1)

    assert admin_login(client, staff, fresh_totp(device_secret(device))) == ""
    index = client.get("/admin/")
    assert index.status_code == HTTPStatus.OK
    assert b"Site administration" in index.content
    assert client.get("/admin/accounts/user/").status_code == HTTPStatus.OK


@pytest.mark.django_db
def test_a_device_does_not_make_a_non_staff_user_an_admin(
    client: Client, make_user: Callable[..., User]
) -> None:
    user = make_user()
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    device = TOTPDevice.objects.get(user=user)
    admin_login(client, user, fresh_totp(device_secret(device)))
    assert client.get("/admin/").status_code == HTTPStatus.FOUND


@pytest.mark.slow
def test_createsuperuser_then_adminotp_enrols_a_device(transactional_db: None) -> None:
    env = manage_env(DJANGO_SUPERUSER_PASSWORD=PASSWORD)
    created = manage(
        "createsuperuser", "--noinput", "--email", "Root@Example.com", env=env, check=False
    )
    assert created.returncode == 0, created.stderr
    root = User.objects.get(email="root@example.com")
    assert root.is_superuser
    assert root.check_password(PASSWORD)

    enrolled = manage("adminotp", "root@example.com", env=env)
    assert enrolled.returncode == 0, enrolled.stderr
    uri = enrolled.stdout.strip()
    device = TOTPDevice.objects.get(user=root)
    assert uri.startswith("otpauth://totp/")
    assert f"secret={device_secret(device)}" in uri

    again = manage("adminotp", "root@example.com", env=env)
    assert again.returncode == 2
    assert "--replace" in again.stderr
    assert TOTPDevice.objects.filter(user=root).count() == 1

    replaced = manage("adminotp", "root@example.com", "--replace", env=env)
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout.strip() != uri
    assert TOTPDevice.objects.filter(user=root).count() == 1


@pytest.mark.slow
def test_adminotp_refuses_unknown_and_non_staff_users(transactional_db: None) -> None:
    env = manage_env()
    User.objects.create_user("plain@example.com", PASSWORD)
    for email in ("nobody@example.com", "plain@example.com"):
        result = manage("adminotp", email, env=env)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1
        assert result.stdout == ""
    assert not TOTPDevice.objects.exists()


@pytest.mark.django_db
def test_force_admin_login_helper_is_what_the_real_login_records(
    client: Client, make_user: Callable[..., User]
) -> None:
    staff = make_user(is_staff=True, is_superuser=True)
    client.force_login(staff)
    assert client.get("/admin/").status_code == HTTPStatus.FOUND
    force_admin_login(client, staff)
    assert client.get("/admin/").status_code == HTTPStatus.OK
