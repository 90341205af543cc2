from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_save


def _account_created(
    sender: Any, instance: Any, created: bool, raw: bool = False, **_: Any
) -> None:
    if created and not raw:  # not while loading fixtures
        from billing.services import account_open

        account_open(account_id=instance.pk)


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        # Every account has its balance (and starting credit) from its first moment.
        post_save.connect(
            _account_created, sender=settings.AUTH_USER_MODEL, dispatch_uid="billing.account_open"
        )
