import json
from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser
from django.db import transaction
from django.utils import timezone

from proxy.catalog.litellm_prices import LiteLLMEntry, read_litellm_file
from proxy.catalog.providers import Provider
from proxy.catalog.refresh import RefreshReport, refresh_catalog
from proxy.catalog.specs import CAPABILITIES, CATALOG_FILE, CatalogDataError, card_spec_from_entry
from proxy.models import ModelCard, ModelType
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
        target = imp.add_mutually_exclusive_group()
        target.add_argument(
            "--add-new", action="store_true", help="also add models the catalog lacks"
        )
        target.add_argument(
            "--write-catalog",
            nargs="?",
            const=CATALOG_FILE,
            type=Path,
            metavar="CATALOG",
            help="refresh the catalog file instead of the database (default: the shipped "
            "proxy/catalog/data/catalog.json): new current models become cards, dated snapshots "
            "aliases; `bootstrap` then loads it",
        )
        imp.add_argument("--dry-run", action="store_true", help="report, change nothing")
        imp.add_argument(
            "--explain",
            action="store_true",
            help="with --write-catalog: also list each entry left out and why",
        )

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
        if options["write_catalog"] is not None:
            self._write_catalog(
                options["write_catalog"],
                entries,
                dry_run=options["dry_run"],
                explain=options["explain"],
            )
            return
        with transaction.atomic():
            result = catalog_import_litellm(entries=entries, add_new=options["add_new"])
            if options["dry_run"]:
                transaction.set_rollback(True)
        self._report(result, dry_run=options["dry_run"], seen=len(entries))

    def _write_catalog(
        self, path: Path, entries: list[LiteLLMEntry], *, dry_run: bool, explain: bool
    ) -> None:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CatalogDataError(f"cannot read catalog {path}: {exc}") from exc
        if not isinstance(document, dict) or not isinstance(document.get("models"), list):
            raise CatalogDataError(f"{path}: expected an object with a 'models' list")
        report = refresh_catalog(document, entries, today=timezone.now().date())
        if not dry_run:
            text = json.dumps(report.document, indent=1, ensure_ascii=False) + "\n"
            try:
                path.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise CatalogDataError(f"cannot write catalog {path}: {exc}") from exc
        self._report_file(report, path, dry_run=dry_run, explain=explain)

    def _report_file(
        self, report: RefreshReport, path: Path, *, dry_run: bool, explain: bool
    ) -> None:
        prefix = "would have " if dry_run else ""
        for title in report.updated:
            self.stdout.write(f"{prefix}updated {title}")
        for title in report.added:
            self.stdout.write(f"{prefix}added {title}")
        for alias, title in report.aliased:
            self.stdout.write(f"{prefix}added alias {alias} to {title}")
        if explain:
            for upstream_id, reason in report.skipped:
                self.stdout.write(f"left out {upstream_id}: {reason}")
        self.stdout.write(
            f"{path}: {len(report.updated)} cards updated, {len(report.added)} added, "
            f"{len(report.aliased)} aliases added, {len(report.skipped)} entries left out "
            "(--explain lists them)" + ("; dry run, nothing written" if dry_run else "")
        )

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
