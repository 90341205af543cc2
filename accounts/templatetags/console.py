"""Formatting for the console (prices per million tokens, token counts) and its banners."""

from decimal import Decimal
from typing import Any

from django import template
from django.conf import settings

from billing.selectors import balance_get

register = template.Library()


@register.filter
def usd(value: Decimal | int | None) -> str:
    """$3.00, $0.075, $0.0375: at least cents, never trailing zeros past them."""
    if value is None:
        return "—"
    amount = Decimal(value)
    text = f"{amount.normalize():f}"
    whole, _, fraction = text.partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


@register.filter
def usd_signed(value: Decimal | int | None) -> str:
    """-$2.50 for a charge, $10.00 for a credit: usd() with the sign before the dollar."""
    if value is None:
        return "—"
    amount = Decimal(value)
    return ("-" if amount < 0 else "") + usd(abs(amount))


@register.filter
def tokens(value: int | None) -> str:
    """128K, 1M, 1.05M: a context window as people say it (the exact number is in a title)."""
    if not value:
        return "—"
    if value >= 1_000_000:
        return f"{value / 1_000_000:.2f}".rstrip("0").rstrip(".") + "M"
    if value >= 1_000:
        return f"{value / 1_000:.1f}".rstrip("0").rstrip(".") + "K"
    return str(value)


@register.inclusion_tag("_low_balance.html", takes_context=True)
def low_balance_banner(context: template.Context) -> dict[str, object]:
    """The banner of a prepaid account whose balance is below TOKENBYTE_LOW_BALANCE: one
    read of the balance, on the pages that render this tag only (never on htmx fragments)."""
    user = getattr(context.get("request"), "user", None)
    if settings.TOKENBYTE_BILLING_MODE != "prepaid" or user is None or not user.is_authenticated:
        return {"low": False}
    balance = balance_get(account_id=user.pk)
    threshold = settings.TOKENBYTE_LOW_BALANCE
    return {"low": balance < threshold, "balance": balance, "threshold": threshold}


@register.filter
def ms(microseconds: int | None) -> str:
    """A duration kept in microseconds, as people read it: 840 ms, 12.4 s."""
    if microseconds is None:
        return "—"
    if microseconds >= 10_000_000:
        return f"{microseconds / 1_000_000:.1f} s"
    if microseconds >= 10_000:
        return f"{microseconds / 1000:,.0f} ms"
    return f"{microseconds / 1000:.1f} ms"


@register.filter
def percentile(figures: Any, which: str) -> int | None:
    """`figures|percentile:"latency 95"`: a percentile of billing.dashboard.Figures, in µs."""
    if figures is None:
        return None
    name, _, percent = which.partition(" ")
    read = figures.latency_us if name == "latency" else figures.ttfb_us
    value: int | None = read(int(percent))
    return value


@register.filter
def get_item(mapping: dict[Any, Any], key: Any) -> Any:
    """`mapping|get_item:key`: a dict's value in a template (None when absent)."""
    return mapping.get(key)
