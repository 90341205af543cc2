"""The admin site: django-otp's, so staff must verify a TOTP device (`manage.py adminotp`)."""

import inspect
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.urls import URLPattern, URLResolver
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite


class AdminLoginForm(OTPAdminAuthenticationForm):
    """Email, password and code in one step when the user has a single device (the usual case);
    with several, django-otp's device picker still decides."""

    def _chosen_device(self, user: Any) -> Any:
        device = super()._chosen_device(user)
        if device is None:
            devices = list(devices_for_user(user, confirmed=True))
            if len(devices) == 1:
                return devices[0]
        return device


class AdminSite(OTPAdminSite):
    login_form = AdminLoginForm
    site_header = "TokenByte administration"
    site_title = "TokenByte admin"

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)

    def get_urls(self) -> list[URLPattern | URLResolver]:
        urls = super().get_urls()
        _skip_console_login(urls)
        return urls


def _skip_console_login(patterns: list[URLPattern | URLResolver]) -> None:
    """Every admin view checks staff + OTP itself (admin_view) and sends strangers to the admin's
    own login; LoginRequiredMiddleware would send them to the console's sign-in instead."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            _skip_console_login(pattern.url_patterns)
        elif not inspect.ismethod(pattern.callback):  # the bound login view is already marked
            login_not_required(pattern.callback)
