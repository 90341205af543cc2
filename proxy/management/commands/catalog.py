from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser
from django.db import transaction

from proxy.catalog_specs import CAPABILITIES, CatalogDataError, card_spec_from_entry
from proxy.litellm_prices import read_litellm_file
from proxy.models import ModelCard, ModelType
from proxy.providers import Provider
from proxy.services import SyncResult, card_create, catalog_import_litellm
from tokenbyte.cli import OperatorCommand, fail


class Command(OperatorCommand):
    help = "Inspect and change the model catalog."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action", required=True, metavar="{list,add,import-litellm}"
        )
        actions.add_parser("list", help="one line per card")

        add = actions.add_parser("add", help="add a card; prints its id")
        add.add_argument("title", help="the name users pass as `model`")
        add.add_argument("--provider", required=True, choices=Provider.values)
        add.add_argument("--upstream-id", required=True)
        add.add_argument("--type", default=ModelType.CHAT, choices=ModelType.values)
        add.add_argument("--context-length", type=int, required=True)
        add.add_argument("--max-output-tokens", type=int, default=None)
        add.add_argument("--input-price", required=True, help="USD per million tokens")
        add.add_argument("--output-price", default="0", help="USD per million tokens")
        add.add_argument("--cache-read-price", default=None, help="default: the input price")
        add.add_argument("--cache-write-price", default=None, help="default: the input price")
        add.add_argument("--alias", action="append", default=[], help="repeatable")
        add.add_argument("--capability", action="append", default=[], choices=CAPABILITIES)
        add.add_argument(
            "--upstream",
            action="append",
            default=[],
            metavar="NAME",
            help="serve only through this upstream credential (repeatable; default: all of "
            "the provider's)",
        )

        imp = actions.add_parser(
            "import-litellm", help="refresh prices and limits from LiteLLM's price JSON"
        )
        imp.add_argument("path", type=Path)
        imp.add_argument("--add-new", action="store_true", help="also add models the catalog lacks")
        imp.add_argument("--dry-run", action="store_true", help="report, change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, "_" + options["action"].replace("-", "_"))(options)
        except CatalogDataError as exc:
            raise fail(str(exc)) from exc

    def _list(self, options: dict[str, Any]) -> None:
        for card in ModelCard.objects.all():
            self.stdout.write(
                f"{card.pk}\t{card.title}\t{card.provider}\t{card.upstream_id}\t{card.type}\t"
                f"in={card.input_price}\tout={card.output_price}\t"
                f"{'active' if card.active else 'inactive'}"
            )

    def _add(self, options: dict[str, Any]) -> None:
        pricing = {"input": options["input_price"], "output": options["output_price"]}
        if options["cache_read_price"] is not None:
            pricing["cache_read"] = options["cache_read_price"]
        if options["cache_write_price"] is not None:
            pricing["cache_write"] = options["cache_write_price"]
        spec = card_spec_from_entry(
            {
                "title": options["title"],
                "provider": options["provider"],
                "upstream_id": options["upstream_id"],
                "type": options["type"],
                "context_length": options["context_length"],
                "max_output_tokens": options["max_output_tokens"],
                "aliases": options["alias"],
                "capabilities": options["capability"],
                "pricing": pricing,
            },
            "card",
        )
        self.stdout.write(str(card_create(spec=spec, upstream_names=options["upstream"]).pk))

    def _import_litellm(self, options: dict[str, Any]) -> None:
        entries = read_litellm_file(options["path"])
        with transaction.atomic():
            result = catalog_import_litellm(entries=entries, add_new=options["add_new"])
            if options["dry_run"]:
                transaction.set_rollback(True)
        self._report(result, dry_run=options["dry_run"], seen=len(entries))

    def _report(self, result: SyncResult, *, dry_run: bool, seen: int) -> None:
        prefix = "would have " if dry_run else ""
        for title in result.updated:
            self.stdout.write(f"{prefix}updated {title}")
        for title in result.created:
            self.stdout.write(f"{prefix}added {title}")
        self.stdout.write(
            f"{seen} routable LiteLLM entries: {len(result.updated)} cards {prefix}updated, "
            f"{len(result.created)} {prefix}added, {len(result.unchanged)} unchanged"
        )
