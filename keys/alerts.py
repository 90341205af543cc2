"""E-mail alerts about money, each sent once per window: a key's spend reaching 80% and 100% of
its budget in its budget window, and an account's prepaid balance falling below
TOKENBYTE_LOW_BALANCE (once per top-up: the top-up that funded it is its window).

Here rather than in billing because budgets are the keys' (billing imports no app above it).
The time is passed in, so the windows are testable without sleeping.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q

from accounts.models import User
from billing.periods import budget_window
from billing.pricing import price_text
from billing.selectors import budget_spent, low_balances
from keys.models import ApiKey, SpendAlert

logger = logging.getLogger(__name__)

WARNING_SHARE = Decimal("0.8")
PERIOD_WORDS = {"daily": "today", "weekly": "this week", "monthly": "this month", "never": ""}


@dataclass(frozen=True)
class Alert:
    account_id: int
    key_id: int | None
    kinds: tuple[str, ...]  # recorded together: a 100% alert also stands for the 80% one
    window_name: str
    subject: str
    body: str


def spend_alerts_send(*, now: datetime) -> int:
    """Send every alert that is due and not sent in its window yet; returns how many went."""
    alerts = _budget_alerts(now)
    if settings.TOKENBYTE_BILLING_MODE == "prepaid":
        alerts += _balance_alerts()
    emails = dict(
        User.objects.filter(pk__in={alert.account_id for alert in alerts}).values_list(
            "pk", "email"
        )
    )
    return sum(_send(alert, emails.get(alert.account_id, "")) for alert in alerts)


def _budget_alerts(now: datetime) -> list[Alert]:
    usable = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    keys = list(
        ApiKey.objects.filter(usable, budget__isnull=False, budget__gt=0, revoked_at__isnull=True)
    )
    windows = {key.pk: budget_window(key.budget_period, now) for key in keys}
    spent = budget_spent(
        key_ids=list(windows), windows=sorted({window.name for window in windows.values()})
    )
    due: list[tuple[ApiKey, Decimal, str]] = []
    for key in keys:
        assert key.budget is not None  # noqa: S101 -- filtered above; narrows the type
        amount = spent.get((key.pk, windows[key.pk].name), Decimal(0))
        if amount >= key.budget * WARNING_SHARE:
            due.append((key, amount, windows[key.pk].name))
    if not due:
        return []
    sent = set(
        SpendAlert.objects.filter(
            key_id__in=[key.pk for key, _, _ in due],
            window_name__in={window for _, _, window in due},
        ).values_list("key_id", "kind", "window_name")
    )
    alerts = []
    for key, amount, window in due:
        assert key.budget is not None  # noqa: S101 -- as above
        full = amount >= key.budget
        kind = SpendAlert.Kind.BUDGET_100 if full else SpendAlert.Kind.BUDGET_80
        if (key.pk, kind, window) in sent:
            continue
        kinds: tuple[str, ...] = (kind,)
        if full and (key.pk, SpendAlert.Kind.BUDGET_80, window) not in sent:
            kinds += (SpendAlert.Kind.BUDGET_80,)  # never an 80% mail after the 100% one
        alerts.append(_budget_alert(key, amount, window, kinds, now))
    return alerts


def _budget_alert(
    key: ApiKey, amount: Decimal, window: str, kinds: tuple[str, ...], now: datetime
) -> Alert:
    assert key.budget is not None  # noqa: S101 -- only keys with a budget come here
    resets_at = budget_window(key.budget_period, now).resets_at
    share = "all" if kinds[0] == SpendAlert.Kind.BUDGET_100 else "80%"
    words = PERIOD_WORDS.get(key.budget_period, "")
    lines = [
        f"Your API key “{key.name}” ({key.prefix}…) has spent ${price_text(amount)} of its "
        f"${price_text(key.budget)} budget{' ' + words if words else ''}.",
    ]
    if kinds[0] == SpendAlert.Kind.BUDGET_100:
        lines.append("Requests through it are refused until the budget resets or is raised.")
    else:
        lines.append("Requests are refused once the rest is spent.")
    if resets_at is not None:
        lines.append(f"The budget resets on {resets_at:%Y-%m-%d %H:%M} UTC.")
    lines.append("You can change the budget on the API keys page of the TokenByte console.")
    return Alert(
        account_id=key.owner_id,
        key_id=key.pk,
        kinds=kinds,
        window_name=window,
        subject=f"[TokenByte] “{key.name}” has used {share} of its budget",
        body="\n\n".join(lines) + "\n",
    )


def _balance_alerts() -> list[Alert]:
    threshold = settings.TOKENBYTE_LOW_BALANCE
    low = {row.account_id: row for row in low_balances(below=threshold)}
    if not low:
        return []
    windows = {account_id: f"topup-{row.topup_id}" for account_id, row in low.items()}
    sent = set(
        SpendAlert.objects.filter(
            key__isnull=True,
            kind=SpendAlert.Kind.LOW_BALANCE,
            account_id__in=list(low),
            window_name__in=set(windows.values()),
        ).values_list("account_id", "window_name")
    )
    return [
        Alert(
            account_id=account_id,
            key_id=None,
            kinds=(SpendAlert.Kind.LOW_BALANCE,),
            window_name=windows[account_id],
            subject=f"[TokenByte] Your balance is low: ${price_text(row.balance)}",
            body=(
                f"Your TokenByte balance is ${price_text(row.balance)}, below "
                f"${price_text(threshold)}. Requests are refused once it runs out.\n\n"
                "Ask the operator of this gateway to top it up; the Billing page of the "
                "console shows every charge.\n"
            ),
        )
        for account_id, row in low.items()
        if (account_id, windows[account_id]) not in sent
    ]


def _send(alert: Alert, email: str) -> int:
    """Record the alert and send it in one transaction: a mail that fails leaves no record (the
    next run tries again), and a record another run made first means it went already."""
    if not email:
        return 0
    try:
        with transaction.atomic():
            SpendAlert.objects.bulk_create(
                [
                    SpendAlert(
                        account_id=alert.account_id,
                        key_id=alert.key_id,
                        kind=kind,
                        window_name=alert.window_name,
                    )
                    for kind in alert.kinds
                ]
            )
            send_mail(alert.subject, alert.body, None, [email])
    except IntegrityError:
        return 0  # sent by a run that overlapped this one
    except OSError:  # smtplib's errors are OSErrors: the next run retries
        logger.exception("spend alert %s for account %s not sent", alert.kinds, alert.account_id)
        return 0
    return 1
