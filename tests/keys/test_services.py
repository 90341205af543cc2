import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.forms.models import model_to_dict

from accounts.models import User
from keys.models import ApiKey, BudgetPeriod
from keys.services import (
    key_last_used_record,
    key_revoke,
    key_rotate,
    key_update,
)
from keys.validation import KeySpec
from proxy.models import ModelCard
from tests.keys.conftest import Mint


def test_mint_returns_a_tb_secret_once_and_stores_only_its_hash(owner: User, mint: Mint) -> None:
    minted = mint(owner, name="laptop")
    secret = minted.secret
    assert secret.startswith("tb-")
    assert len(secret) - len("tb-") >= 32
    key = ApiKey.objects.get()
    assert key.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert key.prefix == secret[:11]
    assert all(secret not in str(value) for value in model_to_dict(key).values())
    assert secret not in repr(minted)
    assert mint(owner).secret != secret


def test_mint_stores_every_limit_normalised(owner: User, mint: Mint) -> None:
    expires = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    key = mint(
        owner,
        name="  ci runner  ",
        note=" nightly ",
        rpm=60,
        tpm=100_000,
        allowed_models=("claude-sonnet-4-5", "GPT-4o", "gpt-4o"),
        max_request_cost=Decimal("0.25"),
        budget=Decimal("50"),
        budget_period=BudgetPeriod.WEEKLY,
        expires_at=expires,
        allowed_networks=("10.1.2.3/8", "2001:db8::1", "10.0.0.0/8"),
    ).key
    key.refresh_from_db()
    assert key.name == "ci runner"
    assert key.note == "nightly"
    assert (key.rpm, key.tpm) == (60, 100_000)
    assert key.allowed_models == ["Claude Sonnet 4.5", "GPT-4o"]  # aliases resolve to titles
    assert key.max_request_cost == Decimal("0.25")
    assert key.budget == Decimal("50")
    assert key.budget_period == "weekly"
    assert key.expires_at == expires
    assert key.allowed_networks == ["10.0.0.0/8", "2001:db8::1/128"]


def test_bad_settings_name_each_field_and_create_nothing(owner: User, mint: Mint) -> None:
    with pytest.raises(ValidationError) as caught:
        mint(
            owner,
            name=" ",
            rpm=0,
            allowed_models=("GPT-4o", "Claude Sonet 4.5"),
            max_request_cost=Decimal("-1"),
            budget=Decimal("0.0000000001"),
            budget_period="yearly",
            allowed_networks=("10.0.0.0/33",),
        )
    errors = caught.value.message_dict
    assert set(errors) == {
        "name",
        "rpm",
        "allowed_models",
        "max_request_cost",
        "budget",
        "budget_period",
        "allowed_networks",
    }
    assert "Unknown model 'Claude Sonet 4.5'" in errors["allowed_models"][0]
    assert "'Claude Sonnet 4.5'" in errors["allowed_models"][0]  # the closest title
    assert "more than 9 decimal places" in errors["budget"][0]
    assert "10.0.0.0/33" in errors["allowed_networks"][0]
    assert not ApiKey.objects.exists()


def test_update_changes_settings_but_not_the_secret(owner: User, mint: Mint) -> None:
    minted = mint(owner, rpm=10)
    key_update(
        key=minted.key,
        spec=KeySpec(name="renamed", tpm=500, allowed_models=("Mistral Small",)),
    )
    key = ApiKey.objects.get()
    assert (key.name, key.rpm, key.tpm) == ("renamed", None, 500)
    assert key.allowed_models == ["Mistral Small"]
    assert key.secret_hash == hashlib.sha256(minted.secret.encode()).hexdigest()


def test_a_title_the_catalog_dropped_survives_edits_but_cannot_be_added(
    owner: User, mint: Mint
) -> None:
    key = mint(owner, allowed_models=("Mistral Small", "GPT-4o")).key
    ModelCard.objects.filter(title="Mistral Small").delete()
    key_update(key=key, spec=KeySpec(name="kept", allowed_models=("Mistral Small",)))
    assert ApiKey.objects.get().allowed_models == ["Mistral Small"]
    other = mint(owner).key
    with pytest.raises(ValidationError, match="Unknown model 'Mistral Small'"):
        key_update(key=other, spec=KeySpec(name="x", allowed_models=("Mistral Small",)))


def test_rotate_mints_a_new_secret_with_the_same_settings_and_revokes_the_old(
    owner: User, mint: Mint
) -> None:
    old = mint(
        owner,
        name="prod",
        rpm=5,
        allowed_models=("GPT-4o",),
        budget=Decimal("9.5"),
        allowed_networks=("192.0.2.0/24",),
        note="n",
    )
    new = key_rotate(key=old.key)
    assert new.secret != old.secret
    assert new.key.pk != old.key.pk
    assert new.key.rotated_from_id == old.key.pk
    old.key.refresh_from_db()
    assert old.key.revoked_at is not None
    assert new.key.revoked_at is None
    assert KeySpec.of(new.key) == KeySpec.of(old.key)
    assert new.key.secret_hash == hashlib.sha256(new.secret.encode()).hexdigest()


def test_revoked_keys_cannot_be_rotated_or_changed_and_revoking_is_idempotent(
    owner: User, mint: Mint
) -> None:
    key = key_revoke(key=mint(owner).key)
    first = key.revoked_at
    assert first is not None
    assert key_revoke(key=key).revoked_at == first
    with pytest.raises(ValidationError, match="revoked"):
        key_rotate(key=key)
    with pytest.raises(ValidationError, match="revoked"):
        key_update(key=key, spec=KeySpec(name="again"))
    assert ApiKey.objects.count() == 1


def test_last_used_is_written_in_one_statement_at_most_about_once_a_minute(
    owner: User, mint: Mint, django_assert_num_queries: object
) -> None:
    keys = [mint(owner).key for _ in range(3)]
    now = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    used = {key.pk: now - timedelta(seconds=index) for index, key in enumerate(keys)}
    with django_assert_num_queries(1):  # type: ignore[operator]
        assert key_last_used_record(used=used) == 3
    for key in keys:
        key.refresh_from_db()
        assert key.last_used_at == used[key.pk]
    assert key_last_used_record(used={keys[0].pk: now + timedelta(seconds=30)}) == 0
    later = now + timedelta(seconds=61)
    assert key_last_used_record(used={keys[0].pk: later}) == 1
    keys[0].refresh_from_db()
    assert keys[0].last_used_at == later
    assert key_last_used_record(used={}) == 0
