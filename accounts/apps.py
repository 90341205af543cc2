from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"


class OTPAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin whose default site is django-otp's: staff must verify a device."""

    default = False  # AccountsConfig stays this module's default app config
    default_site = "accounts.admin_site.AdminSite"
