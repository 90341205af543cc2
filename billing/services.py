"""Writes to the ledger: each entry and its balance change in one transaction."""

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import F

from billing.events import UsageEvent
from billing.models import Balance, EntryKind, LedgerEntry, UsageRecord
from billing.money import charge_for, ledger_amount

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Credited:
    entry: LedgerEntry
    balance: Decimal  # the account's balance after it


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
    return Credited(entry=entry, balance=_balance_add(account.pk, exact))


def _balance_add(account_id: int, amount: Decimal) -> Decimal:
    """Add to the materialised balance (the row is locked until the transaction ends)."""
    Balance.objects.get_or_create(account_id=account_id)
    Balance.objects.filter(account_id=account_id).update(amount=F("amount") + amount)
    balance: Decimal = Balance.objects.values_list("amount", flat=True).get(account_id=account_id)
    return balance


def usage_events_record(*, events: Sequence[UsageEvent]) -> int:
    """Record a batch of usage events and charge them, in one transaction; returns how many
    were new. Idempotent on the event id: events recorded before are skipped, so a batch that
    is delivered again (a consumer that died before acknowledging it) changes nothing."""
    with transaction.atomic():
        ids = [event.event_id for event in events]
        known = set(UsageRecord.objects.filter(event_id__in=ids).values_list("event_id", flat=True))
        accounts = set(
            get_user_model()
            .objects.filter(pk__in={event.account_id for event in events})
            .values_list("pk", flat=True)
        )
        fresh: dict[str, tuple[int, UsageEvent]] = {}
        for event in events:
            if event.event_id in known:
                continue
            if event.account_id not in accounts or event.account_id is None:
                # Deleted while its request was in flight: nothing left to charge. Said loudly,
                # and skipped, so one such event cannot hold back the batch around it.
                logger.error("usage event %s: account %s is gone", event.event_id, event.account_id)
                continue
            fresh.setdefault(event.event_id, (event.account_id, event))  # twice in a batch
        if not fresh:
            return 0
        records, charges = [], []
        spent: dict[int, Decimal] = defaultdict(Decimal)
        for account_id, event in fresh.values():
            charge = charge_for(event.cost)
            records.append(_usage_record(event, account_id, charge))
            if charge:
                charges.append(
                    LedgerEntry(
                        account_id=account_id,
                        amount=-charge,
                        kind=EntryKind.CHARGE,
                        event_id=event.event_id,
                        request_id=event.request_id,
                    )
                )
                spent[account_id] += charge
        UsageRecord.objects.bulk_create(records)
        LedgerEntry.objects.bulk_create(charges)
        for account_id in sorted(spent):  # one order for every writer: no deadlocks
            _balance_add(account_id, -spent[account_id])
        return len(records)


def _usage_record(event: UsageEvent, account_id: int, charge: Decimal) -> UsageRecord:
    usage = event.usage
    return UsageRecord(
        event_id=event.event_id,
        request_id=event.request_id,
        account_id=account_id,
        key_id=event.key_id,
        card_id=event.card_id,
        credential_id=event.credential_id,
        endpoint=event.endpoint,
        model=event.model[:200],
        provider=event.provider or "",
        status=event.status,
        error_code=event.error_code or "",
        stream=event.stream,
        client_disconnected=event.client_disconnected,
        uncached_input_tokens=usage.uncached_input,
        cache_read_tokens=usage.cache_read,
        cache_write_tokens=usage.cache_write,
        output_tokens=usage.output,
        reasoning_tokens=usage.reasoning,
        estimated=usage.estimated,
        cost=event.cost,
        charged=charge,
        started_at=datetime.fromtimestamp(event.started_at, UTC),
        latency_us=round(event.latency_ms * 1000),
        ttfb_us=None if event.ttfb_ms is None else round(event.ttfb_ms * 1000),
        attempts=event.attempts,
        upstream_request_id=event.upstream_request_id or "",
    )
