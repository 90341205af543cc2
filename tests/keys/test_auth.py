"""Key authentication as the /v1 endpoints call it: outcomes, reasons and status codes.

These run the async code through async_to_sync from the test's thread. The resolver looks keys
up on threads of its own; assert_num_queries_anywhere counts the queries of every thread, so
the counts below can fail.
"""

import asyncio
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from accounts.models import User
from keys.services import key_revoke, key_update
from keys.validation import KeySpec
from proxy.gateway.auth.authenticate import authenticate_optional
from proxy.gateway.errors import AuthenticationFailed, PermissionDenied
from proxy.selectors import load_routing_table
from tests.keys.conftest import (
    Mint,
    authenticate_sync,
    bearer,
    gateway_request,
    made_up_key,
    refused,
    runtime_with_resolver,
)
from tests.queries import assert_num_queries_anywhere

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_cached_key_is_authenticated_without_any_query(owner: User, mint: Mint) -> None:
    minted = mint(owner, name="fast", rpm=60, allowed_models=("GPT-4o",))
    runtime = runtime_with_resolver()
    with assert_num_queries_anywhere(1):  # the miss reads the key (and its owner) once
        first = authenticate_sync(runtime, bearer(minted.secret))
    with assert_num_queries_anywhere(0):
        second = authenticate_sync(runtime, bearer(minted.secret))
    assert second is first
    assert first.key_id == minted.key.pk
    assert first.account_id == owner.pk
    assert first.name == "fast"
    assert first.prefix == minted.secret[:11]
    assert first.rpm == 60
    assert first.allowed_models == frozenset({"GPT-4o"})


def test_missing_and_foreign_keys_are_401_without_a_lookup() -> None:
    runtime = runtime_with_resolver()
    with assert_num_queries_anywhere(0):
        missing = refused(runtime)
        assert isinstance(missing, AuthenticationFailed)
        assert "Authorization: Bearer" in missing.message
        basic = refused(runtime, (b"authorization", b"Basic dXNlcjpwYXNz"))
        assert basic.message == missing.message
        foreign = refused(runtime, bearer("sk-proj-abcdefghijklmnopqrstuvwxyz"))
        assert "start with 'tb-'" in foreign.message
        assert refused(runtime, bearer("tb-" + "x" * 300)).status == 401


def test_unknown_keys_are_401_and_cached_negatively() -> None:
    runtime = runtime_with_resolver()
    made_up = bearer(made_up_key())
    with assert_num_queries_anywhere(1):
        error = refused(runtime, made_up)
    assert error.status == 401
    assert "Incorrect API key" in error.message
    with assert_num_queries_anywhere(0):
        assert refused(runtime, made_up).status == 401


def test_a_freshly_minted_key_works_at_once_even_after_a_miss(
    owner: User, mint: Mint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Choose the random part in advance so the key's hash can be asked for before it exists.
    upcoming = secrets.token_urlsafe(32)
    monkeypatch.setattr("keys.services.secrets.token_urlsafe", lambda n: upcoming)
    runtime = runtime_with_resolver()
    async_to_sync(runtime.keys.start)()
    try:
        assert refused(runtime, bearer("tb-" + upcoming)).status == 401  # cached as unknown
        minted = mint(owner)
        assert authenticate_sync(runtime, bearer(minted.secret)).key_id == minted.key.pk
    finally:
        async_to_sync(runtime.keys.stop)()


def test_revoked_expired_and_disabled_keys_are_401_with_the_reason(
    owner: User, stranger: User, mint: Mint
) -> None:
    runtime = runtime_with_resolver()
    revoked = mint(owner)
    key_revoke(key=revoked.key)
    assert "was revoked on" in refused(runtime, bearer(revoked.secret)).message

    expired = mint(owner, expires_at=datetime(2020, 1, 1, tzinfo=UTC))
    message = refused(runtime, bearer(expired.secret)).message
    assert "expired on 2020-01-01 00:00 UTC" in message

    disabled = mint(stranger)
    stranger.is_active = False
    stranger.save()
    assert (
        "account that owns this API key is disabled"
        in refused(runtime, bearer(disabled.secret)).message
    )


def test_a_key_expiring_while_cached_stops_at_its_expiry(owner: User, mint: Mint) -> None:
    minted = mint(owner, expires_at=datetime.now(UTC) + timedelta(seconds=1))
    runtime = runtime_with_resolver()
    assert authenticate_sync(runtime, bearer(minted.secret)).expires_at is not None
    policy = runtime.keys.cached(hashlib.sha256(minted.secret.encode()).hexdigest())
    assert policy is not None
    # The same cached policy, checked after its expiry:
    async_to_sync(asyncio.sleep)(max(0.0, policy.expires_at - datetime.now(UTC).timestamp()))  # type: ignore[operator]
    assert "expired" in refused(runtime, bearer(minted.secret)).message


@pytest.mark.parametrize(
    ("client", "allowed"),
    [
        (("10.9.8.7", 1), True),
        (("::ffff:10.0.0.7", 1), True),  # IPv4 client on a dual-stack listener
        (("2001:db8::5", 1), True),
        (("127.0.0.1", 1), False),
        (("2001:db9::1", 1), False),
        (None, False),  # e.g. a Unix socket: no address to check
    ],
)
def test_client_addresses_outside_the_keys_ranges_are_403(
    owner: User, mint: Mint, client: tuple[str, int] | None, allowed: bool
) -> None:
    minted = mint(owner, allowed_networks=("10.0.0.0/8", "2001:db8::/32"))
    runtime = runtime_with_resolver()
    if allowed:
        assert authenticate_sync(runtime, bearer(minted.secret), client=client).networks
        return
    error = refused(runtime, bearer(minted.secret), client=client)
    assert isinstance(error, PermissionDenied)
    assert error.status == 403
    assert error.code == "ip_not_allowed"


def test_x_api_key_is_read_only_where_allowed(owner: User, mint: Mint) -> None:
    minted = mint(owner)
    runtime = runtime_with_resolver()
    header = (b"x-api-key", minted.secret.encode())
    assert refused(runtime, header).status == 401
    assert authenticate_sync(runtime, header, allow_x_api_key=True).key_id == minted.key.pk
    lower = (b"authorization", b"bearer " + minted.secret.encode())
    assert authenticate_sync(runtime, lower).key_id == minted.key.pk


def test_optional_authentication_ignores_no_key_or_a_foreign_key(owner: User, mint: Mint) -> None:
    runtime = runtime_with_resolver()
    optional = async_to_sync(authenticate_optional)
    assert optional(gateway_request(), runtime.keys) is None
    assert optional(gateway_request(bearer("unused-placeholder")), runtime.keys) is None
    with pytest.raises(AuthenticationFailed):
        optional(gateway_request(bearer(made_up_key())), runtime.keys)
    minted = mint(owner)
    policy = optional(gateway_request(bearer(minted.secret)), runtime.keys)
    assert policy is not None
    assert policy.key_id == minted.key.pk


def test_the_allowlist_counts_a_title_and_its_aliases_as_one_model(owner: User, mint: Mint) -> None:
    routing = load_routing_table(0)
    runtime = runtime_with_resolver()
    limited = authenticate_sync(
        runtime, bearer(mint(owner, allowed_models=("claude-sonnet-4-5",)).secret)
    )
    sonnet = routing.resolve("claude-sonnet-4-5-20250929")
    gpt = routing.resolve("gpt-4o")
    assert sonnet is not None
    assert gpt is not None
    assert limited.allows_card(sonnet)
    limited.check_card(sonnet)
    assert not limited.allows_card(gpt)
    with pytest.raises(PermissionDenied) as caught:
        limited.check_card(gpt)
    assert caught.value.code == "model_not_allowed"
    assert caught.value.param == "model"
    assert "'GPT-4o'" in caught.value.message
    assert "Claude Sonnet 4.5" in caught.value.message
    everything = authenticate_sync(runtime, bearer(mint(owner).secret))
    assert all(everything.allows_card(card) for card in routing.cards)


def test_the_policy_carries_money_limits_as_decimals(owner: User, mint: Mint) -> None:
    minted = mint(
        owner,
        max_request_cost=Decimal("0.000000001"),
        budget=Decimal("1234.5"),
        budget_period="daily",
    )
    policy = authenticate_sync(runtime_with_resolver(), bearer(minted.secret))
    assert policy.max_request_cost == Decimal("0.000000001")
    assert policy.budget == Decimal("1234.5")
    assert policy.budget_period == "daily"


def test_an_edit_reaches_a_gateway_in_this_process_at_once(owner: User, mint: Mint) -> None:
    minted = mint(owner, rpm=1)
    runtime = runtime_with_resolver()
    async_to_sync(runtime.keys.start)()
    try:
        assert authenticate_sync(runtime, bearer(minted.secret)).rpm == 1
        key_update(key=minted.key, spec=KeySpec(name="x", rpm=2))
        assert authenticate_sync(runtime, bearer(minted.secret)).rpm == 2
        key_revoke(key=minted.key)
        assert refused(runtime, bearer(minted.secret)).status == 401
    finally:
        async_to_sync(runtime.keys.stop)()
