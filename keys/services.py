"""Writes to API keys. The console, the admin and `mintkey` all call these.

Every committed change reaches the gateways through keys/signals.py (see keys/cache.py).
"""

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Case, DateTimeField, Q, Value, When
from django.utils import timezone

from accounts.models import User
from keys.models import ApiKey
from keys.validation import KeySpec, clean_key_spec

SECRET_PREFIX = "tb-"  # noqa: S105  # the public mark of our keys, not a secret
SECRET_RANDOM_BYTES = 32  # 256 bits: 43 URL-safe characters after the prefix
DISPLAY_PREFIX_LENGTH = len(SECRET_PREFIX) + 8
# A key's last_used_at is written at most this often, however many processes serve it.
LAST_USED_GRANULARITY = timedelta(seconds=55)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class MintedKey:
    key: ApiKey
    secret: str = field(repr=False)  # shown to its owner once, never stored


def _create(
    *, owner: User, values: dict[str, Any], rotated_from: ApiKey | None = None
) -> MintedKey:
    secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_RANDOM_BYTES)
    key = ApiKey.objects.create(
        owner=owner,
        secret_hash=hash_secret(secret),
        prefix=secret[:DISPLAY_PREFIX_LENGTH],
        rotated_from=rotated_from,
        **values,
    )
    return MintedKey(key=key, secret=secret)


@transaction.atomic
def key_mint(*, owner: User, spec: KeySpec) -> MintedKey:
    return _create(owner=owner, values=clean_key_spec(spec))


def _locked(key: ApiKey) -> ApiKey:
    return ApiKey.objects.select_for_update(of=("self",)).select_related("owner").get(pk=key.pk)


@transaction.atomic
def key_update(*, key: ApiKey, spec: KeySpec) -> ApiKey:
    key = _locked(key)
    if key.revoked_at is not None:
        raise ValidationError("This key is revoked; revoked keys cannot be changed.")
    for name, value in clean_key_spec(spec, current_models=tuple(key.allowed_models)).items():
        setattr(key, name, value)
    key.save()
    return key


@transaction.atomic
def key_rotate(*, key: ApiKey) -> MintedKey:
    """A new secret with the same settings; the old key is revoked in the same transaction."""
    key = _locked(key)
    if key.revoked_at is not None:
        raise ValidationError("This key is revoked; revoked keys cannot be rotated.")
    # The old allowlist is kept as is, even titles the catalog has dropped since.
    spec = KeySpec.of(key)
    values = clean_key_spec(spec, current_models=spec.allowed_models)
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at", "updated_at"])
    return _create(owner=key.owner, values=values, rotated_from=key)


@transaction.atomic
def key_revoke(*, key: ApiKey) -> ApiKey:
    """Revoke a key (idempotent: a revoked key keeps its first revocation time)."""
    key = _locked(key)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at", "updated_at"])
    return key


def key_last_used_record(*, used: Mapping[int, datetime]) -> int:
    """Record when keys were last used, in one statement; returns the rows written.

    Gateways batch these in memory. A row touched within LAST_USED_GRANULARITY is skipped, so
    a key is written about once a minute however many processes serve it.
    """
    if not used:
        return 0
    cutoff = max(used.values()) - LAST_USED_GRANULARITY
    return (
        ApiKey.objects.filter(pk__in=list(used))
        .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=cutoff))
        .update(
            last_used_at=Case(
                *(When(pk=key_id, then=Value(moment)) for key_id, moment in used.items()),
                output_field=DateTimeField(),
            )
        )
    )
