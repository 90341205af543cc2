"""Formatting for the console: prices per million tokens and token counts."""

from decimal import Decimal

from django import template

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
