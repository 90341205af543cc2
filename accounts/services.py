"""Account writes that the console, the CLI and the admin share."""

from allauth.account.forms import default_token_generator
from allauth.account.utils import user_pk_to_url_str
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User


class AccountError(Exception):
    """A refused account change, with a message for the operator."""


@transaction.atomic
def admin_totp_enrol(*, user: User, name: str = "admin", replace: bool = False) -> TOTPDevice:
    """A confirmed TOTP device for the admin (django-otp), separate from the console's 2FA."""
    if not (user.is_active and user.is_staff):
        raise AccountError(f"{user.email} is not an active staff user (see createsuperuser).")
    existing = TOTPDevice.objects.filter(user=user, name=name)
    if existing.exists():
        if not replace:
            raise AccountError(
                f"{user.email} already has an admin device named {name!r}; "
                "pass --replace to issue a new secret."
            )
        existing.delete()
    device: TOTPDevice = TOTPDevice.objects.create(user=user, name=name, confirmed=True)
    return device


def console_url(path: str, *, site_url: str = "") -> str:
    """An absolute console address for the CLI, which has no request to read the host from.

    `site_url` if given; else the first CSRF_TRUSTED_ORIGINS entry (a deployment's public
    origin); else where `make run` serves (HOST and PORT).
    """
    base = site_url or next(iter(settings.CSRF_TRUSTED_ORIGINS), "")
    if not base:
        host = settings.SERVER_HOST
        if host in ("", "0.0.0.0", "::"):  # noqa: S104  # a wildcard bind, not an address to visit
            host = "localhost"
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        base = f"{settings.ACCOUNT_DEFAULT_HTTP_PROTOCOL}://{host}:{settings.SERVER_PORT}"
    return base.rstrip("/") + path


def password_reset_url(*, site_url: str = "") -> str:
    """allauth's "Forgot your password?" page, which mails a link to choose one."""
    return console_url(reverse("account_reset_password"), site_url=site_url)


def sign_in_link(*, user: User, site_url: str = "") -> str:
    """A one-time link where `user` chooses a password: allauth's own password-reset link.

    Its token (allauth's generator) dies once a password is set, or after
    PASSWORD_RESET_TIMEOUT seconds.
    """
    key = default_token_generator.make_token(user)
    path = reverse(
        "account_reset_password_from_key",
        kwargs={"uidb36": user_pk_to_url_str(user), "key": key},
    )
    return console_url(path, site_url=site_url)


@transaction.atomic
def user_body_logging_set(*, user: User, enabled: bool) -> User:
    """Turn storing the account's request and response bodies on or off. Its keys' cache
    entries carry the choice (keys/signals.py refreshes them once this commits), so every
    gateway process follows within a second; bodies stored before stay until their retention
    (TOKENBYTE_BODY_RETENTION_DAYS) deletes them."""
    locked = User.objects.select_for_update().get(pk=user.pk)
    if locked.log_bodies != enabled:
        locked.log_bodies = enabled
        locked.save(update_fields=["log_bodies"])
    user.log_bodies = enabled
    return locked
