import argparse
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import CommandParser
from django.core.validators import URLValidator, validate_email
from django.db import transaction

from accounts.models import User
from accounts.services import password_reset_url, sign_in_link
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


def http_address(text: str) -> str:
    try:
        URLValidator(schemes=["http", "https"])(text)
    except ValidationError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s):// address") from None
    return text


def expiry(text: str) -> datetime:
    try:
        return parse_expiry(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(" ".join(exc.messages)) from None


class Command(OperatorCommand):
    help = (
        "Mint an API key for EMAIL, creating the user (without a usable password) if missing. "
        "Prints the secret alone; it is not stored and cannot be shown again. How the owner "
        "signs in to the console goes to stderr."
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
        parser.add_argument(
            "--link",
            action="store_true",
            help="print (on stderr) a one-time link where the owner chooses a password",
        )
        parser.add_argument(
            "--site-url",
            type=http_address,
            default=None,
            help="the console's address in that link (default: the first CSRF_TRUSTED_ORIGINS "
            "entry, else http://HOST:PORT as `make run` serves)",
        )

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
        # Guidance, not an error: stderr keeps stdout the secret alone, unstyled.
        site_url = options["site_url"] or ""
        if options["link"]:
            days = max(1, settings.PASSWORD_RESET_TIMEOUT // 86400)
            self.stderr.write(
                f"One-time sign-in link for {owner.email} (choose a password there; it works "
                f"once, for {days} days; the first sign-in mails a code that confirms their "
                f"address): {sign_in_link(user=owner, site_url=site_url)}",
                style_func=str,
            )
        elif not owner.has_usable_password():
            self.stderr.write(
                f"{owner.email} has no password yet. To see their keys in the console they "
                f"choose one at {password_reset_url(site_url=site_url)} (a link is mailed to "
                "them), or you pass on the one-time link `mintkey --link` prints; the first "
                "sign-in mails a code that confirms their address.",
                style_func=str,
            )


def _flag_message(exc: ValidationError) -> str:
    if not hasattr(exc, "error_dict"):
        return " ".join(exc.messages)
    return "; ".join(
        f"{FLAGS.get(field, field)}: {message}"
        for field, messages in exc.message_dict.items()
        for message in messages
    )
