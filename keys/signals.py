"""Announce every committed change to a key (or to its owner's standing) to the gateways."""

from functools import partial
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import User
from keys.cache import key_cache_refresh
from keys.models import ApiKey

# The owner's fields its keys' cache entries carry (keys/cache.py key_cache_entry).
OWNER_FIELDS = frozenset({"is_active", "log_bodies"})


@receiver(post_save, sender=ApiKey)
def _key_saved(instance: ApiKey, **kwargs: Any) -> None:
    transaction.on_commit(partial(key_cache_refresh, key_ids=[instance.pk]))


@receiver(post_delete, sender=ApiKey)
def _key_deleted(instance: ApiKey, **kwargs: Any) -> None:
    transaction.on_commit(partial(key_cache_refresh, deleted_hashes=[instance.secret_hash]))


@receiver(post_save, sender=User)
def _owner_saved(
    instance: User, created: bool, update_fields: frozenset[str] | None, **kwargs: Any
) -> None:
    # A disabled account's keys stop working, and its body-logging choice rides on their
    # entries; saves that can change neither (a login's last_login update) are skipped.
    if created or (update_fields is not None and not OWNER_FIELDS & update_fields):
        return
    key_ids = list(ApiKey.objects.filter(owner=instance).values_list("pk", flat=True))
    if key_ids:
        transaction.on_commit(partial(key_cache_refresh, key_ids=key_ids))
