"""Every committed change to a key, or to its owner's standing, is announced to the gateways."""

import hashlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
from django.conf import settings
from django.db import transaction

from accounts.models import User
from keys.cache import key_changed, policy_redis_key
from keys.services import key_revoke, key_rotate
from tests.keys.conftest import Mint

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def heard() -> Iterator[list[str]]:
    """The hashes announced in this process while the test runs."""
    announced: list[str] = []

    def listen(sender: Any, hashes: list[str], **kwargs: Any) -> None:
        announced.extend(hashes)

    key_changed.connect(listen, weak=False, dispatch_uid="test-listener")
    yield announced
    key_changed.disconnect(dispatch_uid="test-listener")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def test_changes_are_announced_once_committed(owner: User, mint: Mint, heard: list[str]) -> None:
    with transaction.atomic():
        minted = mint(owner)
        assert heard == []  # nothing before the commit
    assert heard == [digest(minted.secret)]
    heard.clear()
    rotated = key_rotate(key=minted.key)
    assert set(heard) == {digest(minted.secret), digest(rotated.secret)}
    heard.clear()
    rotated.key.delete()
    assert heard == [digest(rotated.secret)]


def test_an_owners_standing_is_announced_but_a_login_is_not(
    owner: User, mint: Mint, heard: list[str]
) -> None:
    minted = mint(owner)
    heard.clear()
    owner.save(update_fields=["last_login"])
    assert heard == []
    owner.is_active = False
    owner.save()
    assert heard == [digest(minted.secret)]


@pytest.mark.redis
def test_redis_holds_the_current_entry_of_each_key(owner: User, mint: Mint) -> None:
    store = redis.Redis.from_url(settings.REDIS_URL)
    minted = mint(owner, rpm=5)
    name = policy_redis_key(digest(minted.secret))
    entry = orjson.loads(store.get(name) or b"{}")
    assert (entry["id"], entry["rpm"]) == (minted.key.pk, 5)
    assert 0 < store.ttl(name) <= 300
    key_revoke(key=minted.key)
    assert "revoked" in orjson.loads(store.get(name) or b"{}")["refused"]
    minted.key.delete()
    assert store.get(name) is None
    store.close()
