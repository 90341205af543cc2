from decimal import Decimal

from django import template

from billing.pricing import price_text

register = template.Library()


@register.filter
def usd(amount: Decimal | None) -> str:
    """$ and at least cents: 50 -> $50.00, 0.125 -> $0.125; empty for no amount."""
    return "" if amount is None else f"${price_text(amount)}"
