"""Writes to the ledger: each entry and its balance change in one transaction."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from redis.exceptions import RedisError

from billing.events import UsageEvent
from billing.inbox import inbox_append, inbox_fold, inbox_left
from billing.models import Balance, EntryKind, LedgerEntry
from billing.money import BadAmount, ledger_amount
from billing.recording import record_events
from billing.reservations import BalanceState, RecordedBatch, push_balance
from tokenbyte.redis import sync_client

logger = logging.getLogger(__name__)

MIRROR_TIMEOUT_SECONDS = 2


@dataclass(frozen=True, slots=True)
class Credited:
    entry: LedgerEntry
    balance: Decimal  # the account's balance after it
    state: BalanceState


@transaction.atomic
def ledger_credit(
    *,
    account: AbstractBaseUser,
    amount: Decimal,
    note: str = "",
    created_by: AbstractBaseUser | None = None,
) -> Credited:
    """An operator's top-up (amount > 0) or adjustment (< 0), and the balance after it.

    Raises billing.money.BadAmount (zero, more than 9 decimals, too large); nothing changes.
    """
    exact = ledger_amount(amount)
    entry = LedgerEntry.objects.create(
        account_id=account.pk,
        amount=exact,
        kind=EntryKind.TOPUP if exact > 0 else EntryKind.ADJUSTMENT,
        note=note.strip(),
        created_by_id=created_by.pk if created_by is not None else None,
    )
    state = _balance_add(account.pk, exact)
    if settings.REDIS_URL:  # the gateways' mirror of the balance, once it is committed
        transaction.on_commit(lambda: _mirror_balance(account.pk, state))
    return Credited(entry=entry, balance=state.amount, state=state)


@transaction.atomic
def balance_credit_limit_set(*, account_id: int, credit_limit: Decimal) -> BalanceState:
    """How far below zero a postpaid account may go; the gateways' mirrors follow."""
    if credit_limit < 0:
        raise BadAmount("the credit limit must not be negative")
    state = _balance_add(account_id, Decimal(0), credit_limit=credit_limit)
    if settings.REDIS_URL:
        transaction.on_commit(lambda: _mirror_balance(account_id, state))
    return state


def _mirror_balance(account_id: int, state: BalanceState) -> None:
    try:
        with sync_client(settings.REDIS_URL, timeout=MIRROR_TIMEOUT_SECONDS) as client:
            push_balance(client, account_id, state)
    except RedisError as exc:
        # The gateways read the database when their mirror expires (at most
        # billing.reservations.MIRROR_TTL_SECONDS) or at billing's next charge of the account.
        logger.warning("balance of account %s not mirrored to Redis: %s", account_id, exc)


STARTING_BALANCE_NOTE = "Starting balance"


@transaction.atomic
def account_open(*, account_id: int) -> None:
    """A new account's balance row, with the configured credit limit and starting balance."""
    created = Balance.objects.bulk_create(
        [Balance(account_id=account_id, credit_limit=settings.TOKENBYTE_CREDIT_LIMIT)],
        ignore_conflicts=True,
    )
    starting = settings.TOKENBYTE_STARTING_BALANCE
    if created and starting > 0 and not LedgerEntry.objects.filter(account_id=account_id).exists():
        LedgerEntry.objects.create(
            account_id=account_id,
            amount=ledger_amount(starting),
            kind=EntryKind.TOPUP,
            note=STARTING_BALANCE_NOTE,
        )
        _balance_add(account_id, starting)


def _balance_add(
    account_id: int, amount: Decimal, *, credit_limit: Decimal | None = None
) -> BalanceState:
    """Add to the materialised balance (the row is locked until the transaction ends).

    The sum is taken in Python, not in SQL: SQLite would add decimals as floats.
    """
    Balance.objects.bulk_create([Balance(account_id=account_id)], ignore_conflicts=True)
    row = Balance.objects.select_for_update().get(account_id=account_id)
    row.amount += amount
    if credit_limit is not None:
        row.credit_limit = credit_limit
    row.version += 1
    row.save(update_fields=["amount", "credit_limit", "version", "updated_at"])
    return BalanceState(amount=row.amount, version=row.version, credit_limit=row.credit_limit)


def usage_events_record(*, events: Sequence[UsageEvent]) -> RecordedBatch:
    """Record a batch of usage events and charge them, in one transaction. Idempotent on the
    event id: events recorded before are skipped, so a batch that is delivered again (a
    consumer that died before acknowledging it) changes nothing.

    Usage records, ledger charges, balances, the keys' BudgetSpend and the rollups, written in
    plain SQL (billing/recording.py): the in-process recorder of embedded mode runs this in the
    gateway's own process, where the ORM's cost per row halved its throughput."""
    with transaction.atomic():
        return record_events(events)


def usage_events_write(*, events: Sequence[UsageEvent]) -> None:
    """Make a batch of usage events durable, to be recorded later (billing/inbox.py): the
    in-process recorder's first step, which the answers wait for."""
    inbox_append(events)


def usage_events_fold(*, events: Sequence[UsageEvent]) -> RecordedBatch:
    """Record and charge events written before, and take them out of the inbox, in one
    transaction (idempotent like usage_events_record)."""
    return inbox_fold(events)


def usage_events_left(*, written_before: datetime, limit: int) -> list[UsageEvent]:
    """Events written but never folded (their process stopped between the two steps)."""
    return inbox_left(written_before=written_before, limit=limit)
