from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandParser

from proxy.catalog.credential_check import CredentialCheckFailed
from proxy.catalog.providers import Provider
from proxy.models import UpstreamCredential
from proxy.services import credential_add
from tokenbyte.cli import OperatorCommand, fail, validation_message


class Command(OperatorCommand):
    help = (
        "Manage upstream provider credentials (several per provider are balanced and failed over)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{add,list}")
        add = actions.add_parser("add", help="add or update a credential; prints its id")
        add.add_argument("provider", help=", ".join(Provider.values))
        add.add_argument("--api-key", required=True)
        add.add_argument("--base-url", default="", help="default: the provider's official API")
        add.add_argument("--name", default=None, help="default: derived from the key")
        add.add_argument("--priority", type=int, default=None, help="higher is tried first")
        add.add_argument("--weight", type=int, default=None, help="share among equal priorities")
        add.add_argument(
            "--no-verify",
            action="store_true",
            help="store the key without first listing the provider's models with it (offline)",
        )
        actions.add_parser("list", help="one line per credential (keys masked)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            for credential in UpstreamCredential.objects.all():
                state = "enabled" if credential.enabled else "disabled"
                self.stdout.write(
                    f"{credential.pk}\t{credential.provider}\t{credential.name}\t"
                    f"{credential.effective_base_url}\t{credential.masked_key}\t"
                    f"priority={credential.priority}\tweight={credential.weight}\t{state}"
                )
            return
        try:
            credential, _ = credential_add(
                provider=options["provider"],
                api_key=options["api_key"],
                verify=not options["no_verify"],
                base_url=options["base_url"],
                name=options["name"],
                priority=options["priority"],
                weight=options["weight"],
            )
        except ValidationError as exc:
            raise fail(validation_message(exc)) from exc
        except CredentialCheckFailed as exc:
            raise fail(str(exc)) from None
        self.stdout.write(str(credential.pk))
