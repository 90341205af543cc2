from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandParser

from billing.money import BadAmount
from billing.pricing import price_text
from billing.services import ledger_credit
from tokenbyte.cli import OperatorCommand, fail


class Command(OperatorCommand):
    help = (
        "Add a ledger entry of AMOUNT US dollars to EMAIL's account: a top-up when positive, "
        "an adjustment when negative. Prints the new balance alone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("amount", help="US dollars, up to 9 decimals; not zero")
        parser.add_argument("--note", default="", help="why, kept on the ledger entry")

    def handle(self, *args: Any, **options: Any) -> None:
        email, text = options["email"].strip(), options["amount"].strip()
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise fail(f"{text!r} is not an amount of US dollars") from None
        account = get_user_model().objects.filter(email__iexact=email).first()
        if account is None:
            raise fail(f"no account has the email address {email!r} (mintkey creates one)")
        try:
            credited = ledger_credit(account=account, amount=amount, note=options["note"])
        except BadAmount as exc:
            raise fail(f"AMOUNT: {exc}") from None
        self.stdout.write(price_text(credited.balance))
