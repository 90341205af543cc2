import io
from typing import Any

import qrcode
from django.core.management.base import CommandParser

from accounts.models import User
from accounts.services import AccountError, admin_totp_enrol
from tokenbyte.cli import OperatorCommand, fail


class Command(OperatorCommand):
    help = (
        "Enrol a TOTP device that a staff user needs to open /admin/. Prints its otpauth:// URI "
        "(and, on a terminal, a QR code) for an authenticator app."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email", help="a staff user's email (createsuperuser makes one)")
        parser.add_argument("--name", default="admin", help="the device's name (default: admin)")
        parser.add_argument(
            "--replace", action="store_true", help="replace the device of that name (new secret)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(email__iexact=options["email"].strip()).first()
        if user is None:
            raise fail(f"No user with the email {options['email']!r}.")
        try:
            device = admin_totp_enrol(user=user, name=options["name"], replace=options["replace"])
        except AccountError as exc:
            raise fail(str(exc)) from exc
        if self.stdout.isatty():
            qr = qrcode.QRCode(border=1)
            qr.add_data(device.config_url)
            picture = io.StringIO()
            qr.print_ascii(out=picture, invert=True)
            self.stderr.write(picture.getvalue())
            self.stderr.write("Scan this with an authenticator app, or paste the URI below.")
        self.stdout.write(device.config_url)
