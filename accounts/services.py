"""Account writes that the console, the CLI and the admin share."""

from django.db import transaction
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
