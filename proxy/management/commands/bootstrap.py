from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from proxy.catalog.specs import CatalogDataError
from proxy.services import bootstrap_run
from tokenbyte.cli import OperatorCommand, fail, validation_message


class Command(OperatorCommand):
    help = (
        "Load or update the shipped model catalog and one upstream credential per provider "
        "whose <NAME>_API_KEY is set. Safe to run any number of times."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = bootstrap_run(provider_env=settings.TOKENBYTE_PROVIDER_ENV)
        except CatalogDataError as exc:
            raise fail(str(exc)) from exc
        except ValidationError as exc:
            raise fail(
                f"upstream credential from the environment: {validation_message(exc)}"
            ) from exc
        catalog = result.catalog
        self.stdout.write(
            f"catalog: {len(catalog.created)} created, {len(catalog.updated)} updated, "
            f"{len(catalog.unchanged)} unchanged"
            + (f", {len(catalog.skipped)} kept as edited" if catalog.skipped else "")
        )
        if not result.credentials:
            self.stdout.write("upstreams: none from the environment (set e.g. OPENAI_API_KEY)")
        for credential, created in result.credentials:
            self.stdout.write(
                f"upstream {credential.provider}/{credential.name} {credential.masked_key}: "
                + ("created" if created else "up to date")
            )
