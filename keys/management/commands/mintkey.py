import argparse
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandParser
from django.core.validators import validate_email
from django.db import transaction

from accounts.models import User
from keys.models import BudgetPeriod
from keys.services import key_mint
from keys.validation import KeySpec, parse_expiry
from tokenbyte.cli import OperatorCommand, fail

# How the services' field names read on this command line.
FLAGS = {
    "name": "--name",
    "rpm": "--rpm",
    "tpm": "--tpm",
    "allowed_models": "--models",
    "max_request_cost": "--max-request-cost",
    "budget": "--budget",
    "budget_period": "--budget-period",
    "expires_at": "--expires",
    "note": "--note",
}


# Parsing only: the ranges are the service's to check, as for the console.
def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def usd(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount of US dollars") from None


def expiry(text: str) -> datetime:
    try:
        return parse_expiry(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(" ".join(exc.messages)) from None


class Command(OperatorCommand):
    help = (
        "Mint an API key for EMAIL, creating the user (without a usable password) if missing. "
        "Prints the secret alone; it is not stored and cannot be shown again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--name", default="CLI key")
        parser.add_argument("--rpm", type=whole_number, help="requests per minute")
        parser.add_argument("--tpm", type=whole_number, help="tokens per minute")
        parser.add_argument(
            "--models", default="", help='allowed model titles, comma-separated ("A,B")'
        )
        parser.add_argument("--max-request-cost", type=usd, help="US dollars per request")
        parser.add_argument("--budget", type=usd, help="US dollars per budget period")
        parser.add_argument(
            "--budget-period", choices=BudgetPeriod.values, default=BudgetPeriod.MONTHLY
        )
        parser.add_argument(
            "--expires",
            type=expiry,
            help="ISO 8601 date or date-time, UTC unless it names a zone; a past one mints an "
            "already-expired key",
        )
        parser.add_argument("--note", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        email = options["email"].strip()
        try:
            validate_email(email)
        except ValidationError:
            raise fail(f"{email!r} is not an email address") from None
        spec = KeySpec(
            name=options["name"],
            note=options["note"],
            rpm=options["rpm"],
            tpm=options["tpm"],
            allowed_models=tuple(options["models"].split(",")),
            max_request_cost=options["max_request_cost"],
            budget=options["budget"],
            budget_period=options["budget_period"],
            expires_at=options["expires"],
        )
        try:
            with transaction.atomic():  # a refused key leaves no new user behind
                owner = User.objects.filter(email__iexact=email).first()
                if owner is None:
                    owner = User.objects.create_user(email)
                minted = key_mint(owner=owner, spec=spec)
        except ValidationError as exc:
            raise fail(_flag_message(exc)) from exc
        self.stdout.write(minted.secret)


def _flag_message(exc: ValidationError) -> str:
    if not hasattr(exc, "error_dict"):
        return " ".join(exc.messages)
    return "; ".join(
        f"{FLAGS.get(field, field)}: {message}"
        for field, messages in exc.message_dict.items()
        for message in messages
    )
