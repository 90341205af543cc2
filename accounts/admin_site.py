"""The admin site: django-otp's, so staff must verify a TOTP device (`manage.py adminotp`)."""

from typing import Any

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
