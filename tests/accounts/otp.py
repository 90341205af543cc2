"""For tests of admin pages: a signed-in staff client whose session passed the admin's OTP check."""

from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User


def force_admin_login(client: Client, user: User) -> Client:
    """client.force_login(user), plus what a verified TOTP code at /admin/login/ records.
    (tests/accounts/test_admin_otp.py proves the real login with a code.)"""
    device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client
