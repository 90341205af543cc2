"""Amounts of money as the ledger keeps them, and the one rounding rule from cost to charge.

A request's exact cost (billing/pricing.py) has up to 12 decimals: token counts times prices
with up to 6 decimals, per million tokens. The ledger keeps 9 (1e-9 USD, a nano-dollar). The
rule, applied here and nowhere else: a cost becomes its charge rounded half-to-even to 1e-9
USD (banker's rounding: no bias up or down over many charges).
"""

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

LEDGER_PLACES = 9
# Up to a thousand million million dollars: room for an operator's whole turnover in one sum.
LEDGER_DIGITS = 24
LEDGER_QUANTUM = Decimal(1).scaleb(-LEDGER_PLACES)
LEDGER_LIMIT = Decimal(10) ** (LEDGER_DIGITS - LEDGER_PLACES)


class BadAmount(ValueError):
    """An amount the ledger cannot take as it is; the message says why."""


def charge_for(cost: Decimal) -> Decimal:
    """The ledger's charge for an exact cost: rounded half-to-even to 1e-9 USD."""
    return cost.quantize(LEDGER_QUANTUM, rounding=ROUND_HALF_EVEN)


def ledger_amount(amount: Decimal) -> Decimal:
    """An operator's amount as the ledger stores it, or BadAmount: never rounded silently."""
    try:
        if not amount.is_finite():
            raise BadAmount(f"{amount} is not an amount of US dollars")
        exact = amount.quantize(LEDGER_QUANTUM)
    except InvalidOperation:
        raise BadAmount(f"{amount} is too large for the ledger") from None
    if exact != amount:
        raise BadAmount(f"{amount} has more than {LEDGER_PLACES} decimals (the ledger keeps 1e-9)")
    if exact == 0:
        raise BadAmount("the amount must not be zero")
    if abs(exact) >= LEDGER_LIMIT:
        raise BadAmount(f"{amount} is too large for the ledger")
    return exact


def hold_verdict(
    amount: Decimal,
    *,
    balance: Decimal,
    credit_limit: Decimal,
    held: Decimal,
    budget: Decimal | None,
    spent: Decimal,
    key_held: Decimal,
) -> tuple[bool, Decimal, Decimal | None]:
    """Whether `amount` fits what the balance (with the credit limit that applies, less what
    is held) and the key's budget (less its spend and its holds) leave: (fits, balance left
    for it, budget left or None). Refused, the figures are those before it."""
    available = balance + credit_limit - held
    left = None if budget is None else max(Decimal(0), budget - spent - key_held)
    if amount > available or (left is not None and amount > left):
        return False, max(Decimal(0), available), left
    return True, available - amount, None if left is None else left - amount
