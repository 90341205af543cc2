"""Writes to the catalog and the upstream credentials. Views, commands and the admin call these."""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction

from proxy.catalog.credential_check import credential_verify
from proxy.catalog.crypto import CredentialDecryptionError
from proxy.catalog.litellm_prices import LiteLLMEntry
from proxy.catalog.price_tiers import merged_tiers
from proxy.catalog.providers import Provider, default_base_url
from proxy.catalog.specs import CardSpec, CatalogDataError, read_catalog_file
from proxy.models import CardSource, ModelCard, UpstreamCredential


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _apply(card: ModelCard, values: dict[str, Any]) -> bool:
    changed = False
    for name, value in values.items():
        if getattr(card, name) != value:
            setattr(card, name, value)
            changed = True
    return changed


def _names_taken_elsewhere(spec: CardSpec, own_pk: int | None) -> str | None:
    wanted = {spec.title.lower(), *(alias.lower() for alias in spec.aliases)}
    others = ModelCard.objects.only("title", "aliases")
    if own_pk is not None:
        others = others.exclude(pk=own_pk)
    for other in others:
        if wanted & {other.title.lower(), *(alias.lower() for alias in other.aliases)}:
            return other.title
    return None


@transaction.atomic
def catalog_sync(*, specs: list[CardSpec] | None = None) -> SyncResult:
    """Create or update the shipped catalog's cards (idempotent).

    A card the shipped catalog created is kept in step with it. Once an operator edits a card
    or a LiteLLM import refreshes it, its source changes and the catalog leaves it alone.
    """
    result = SyncResult()
    for spec in read_catalog_file() if specs is None else specs:
        card = ModelCard.objects.filter(title__iexact=spec.title).first()
        if card is not None and card.source != CardSource.CATALOG:
            result.skipped.append(spec.title)
            continue
        clash = _names_taken_elsewhere(spec, card.pk if card else None)
        if clash:
            raise CatalogDataError(f"{spec.title}: a name is already used by {clash}")
        if card is None:
            ModelCard.objects.create(source=CardSource.CATALOG, **spec.model_fields())
            result.created.append(spec.title)
        elif _apply(card, spec.model_fields()):
            card.save()
            result.updated.append(spec.title)
        else:
            result.unchanged.append(spec.title)
    return result


def _find_card(entry: LiteLLMEntry) -> ModelCard | None:
    for card in ModelCard.objects.filter(provider=entry.provider):
        if entry.upstream_id.lower() in {card.upstream_id.lower(), *map(str.lower, card.aliases)}:
            return card
    return None


@transaction.atomic
def catalog_import_litellm(*, entries: list[LiteLLMEntry], add_new: bool = False) -> SyncResult:
    """Refresh prices and limits of matching cards from LiteLLM's table; optionally add the rest."""
    result = SyncResult()
    for entry in entries:
        card = _find_card(entry)
        if card is None and not add_new:
            continue
        values: dict[str, Any] = {
            "input_price": entry.input_price,
            "output_price": entry.output_price,
            "cache_read_price": entry.cache_read_price
            if entry.cache_read_price is not None
            else entry.input_price,
            "cache_write_price": entry.cache_write_price
            if entry.cache_write_price is not None
            else entry.input_price,
        }
        values["price_tiers"] = merged_tiers(card.price_tiers if card else {}, entry.price_tiers)
        if entry.context_length:
            values["context_length"] = entry.context_length
        if entry.max_output_tokens and entry.type == "chat":
            values["max_output_tokens"] = entry.max_output_tokens
        if card is None:
            if ModelCard.objects.filter(title__iexact=entry.upstream_id).exists() or (
                entry.type == "chat" and not entry.max_output_tokens
            ):
                result.skipped.append(entry.upstream_id)
                continue
            values.setdefault("context_length", entry.max_output_tokens or 4096)
            ModelCard.objects.create(
                title=entry.upstream_id,
                provider=entry.provider,
                upstream_id=entry.upstream_id,
                type=entry.type,
                supports_tools=entry.supports_tools,
                supports_vision=entry.supports_vision,
                supports_json=entry.supports_json,
                supports_reasoning=entry.supports_reasoning,
                source=CardSource.LITELLM,
                **values,
            )
            result.created.append(entry.upstream_id)
            continue
        if _apply(card, values):
            card.source = CardSource.LITELLM
            card.save()
            result.updated.append(card.title)
        else:
            result.unchanged.append(card.title)
    return result


@transaction.atomic
def card_create(*, spec: CardSpec, upstream_names: list[str] | None = None) -> ModelCard:
    """Add a card; with `upstream_names`, it is served only through those credentials."""
    clash = _names_taken_elsewhere(spec, None)
    if clash:
        raise CatalogDataError(f"a name of {spec.title!r} is already used by {clash}")
    credentials = list(
        UpstreamCredential.objects.filter(provider=spec.provider, name__in=upstream_names or [])
    )
    missing = set(upstream_names or []) - {credential.name for credential in credentials}
    if missing:
        raise CatalogDataError(
            f"no {spec.provider} upstream named {', '.join(sorted(missing))} "
            "(see `manage.py upstream list`)"
        )
    card = ModelCard.objects.create(source=CardSource.MANUAL, **spec.model_fields())
    card.credentials.set(credentials)
    return card


def _clean_credential_input(
    provider: str, api_key: str, base_url: str, name: str | None, weight: int | None
) -> tuple[str, str]:
    """(the base URL to store, empty for the default; the name), or ValidationError."""
    base_url = base_url.strip().rstrip("/")
    _validate_credential_input(provider, api_key, base_url)
    if base_url == default_base_url(provider):
        base_url = ""
    if weight is not None and weight < 1:
        raise ValidationError("weight must be 1 or more")
    name = (name or default_credential_name(provider, api_key)).strip()
    if not name or len(name) > 100:
        raise ValidationError("the name must be 1 to 100 characters")
    return base_url, name


def _validate_credential_input(provider: str, api_key: str, base_url: str) -> None:
    if provider not in Provider.values:
        raise ValidationError(
            f"unknown provider {provider!r}; choose one of {', '.join(Provider.values)}"
        )
    if not api_key or api_key != api_key.strip() or any(ch.isspace() for ch in api_key):
        raise ValidationError("the API key must be non-empty and contain no whitespace")
    if not (api_key.isascii() and api_key.isprintable()):
        # Providers issue ASCII keys, and headers carry nothing else; "sk-ant-…" is a
        # placeholder from a document.
        raise ValidationError(
            "the API key must be printable ASCII characters, as providers issue them "
            "(a placeholder such as sk-ant-… is not a key)"
        )
    if base_url:
        try:
            URLValidator(schemes=["http", "https"])(base_url)
        except ValidationError as exc:
            raise ValidationError(f"invalid base URL {base_url!r}: use http(s)://host/…") from exc
    elif provider == Provider.OPENAI_COMPATIBLE:
        raise ValidationError("an openai-compatible upstream needs --base-url")


def default_credential_name(provider: str, api_key: str) -> str:
    """Stable per key, so adding the same key twice updates one row instead of adding two."""
    return f"{provider}-{hashlib.sha256(api_key.encode()).hexdigest()[:8]}"


def _stores_key(credential: UpstreamCredential, api_key: str) -> bool:
    try:
        return credential.get_api_key() == api_key
    except CredentialDecryptionError:  # stored under a lost key: the new one replaces it
        return False


@transaction.atomic
def credential_upsert(
    *,
    provider: str,
    api_key: str,
    name: str | None = None,
    base_url: str = "",
    priority: int | None = None,
    weight: int | None = None,
) -> tuple[UpstreamCredential, bool]:
    """Create or update the credential named `name` of `provider`; returns (row, created)."""
    base_url, name = _clean_credential_input(provider, api_key, base_url, name, weight)
    credential = (
        UpstreamCredential.objects.select_for_update().filter(provider=provider, name=name).first()
    )
    created = credential is None
    if credential is None:
        credential = UpstreamCredential(provider=provider, name=name)
    if created or not _stores_key(credential, api_key):
        credential.set_api_key(api_key)
    credential.base_url = base_url
    if priority is not None:
        credential.priority = priority
    if weight is not None:
        credential.weight = weight
    credential.save()
    return credential, created


def credential_add(
    *,
    provider: str,
    api_key: str,
    verify: bool,
    name: str | None = None,
    base_url: str = "",
    priority: int | None = None,
    weight: int | None = None,
) -> tuple[UpstreamCredential, bool]:
    """`credential_upsert`, after (with `verify`) one call to the provider that accepts the key.

    Raises ValidationError for bad input and CredentialCheckFailed when the key was not
    confirmed; either way nothing is stored. The call is made outside any transaction.
    """
    stored_url, clean_name = _clean_credential_input(provider, api_key, base_url, name, weight)
    if verify:
        _verify(provider, api_key, stored_url)
    return credential_upsert(
        provider=provider,
        api_key=api_key,
        name=clean_name,
        base_url=stored_url,
        priority=priority,
        weight=weight,
    )


def _verify(provider: str, api_key: str, base_url: str) -> None:
    effective_url = (base_url or default_base_url(provider)).rstrip("/")
    credential_verify(provider=provider, api_key=api_key, base_url=effective_url)


def credential_key_check(*, provider: str, api_key: str, base_url: str, verify: bool) -> None:
    """The checks `credential_add` makes of a new key, for the admin's form: ValidationError for
    a malformed one, CredentialCheckFailed (with `verify`) when the provider refuses it."""
    _validate_credential_input(provider, api_key, base_url.strip().rstrip("/"))
    if verify:
        _verify(provider, api_key, base_url.strip().rstrip("/"))


def credential_save(*, credential: UpstreamCredential, api_key: str = "") -> UpstreamCredential:
    """Save an operator's edit of a credential; a non-empty `api_key` replaces the stored key."""
    if api_key:
        credential.set_api_key(api_key)
    credential.save()
    return credential


def credentials_set_enabled(*, credentials: Iterable[UpstreamCredential], enabled: bool) -> int:
    count = 0
    for credential in credentials:  # save() per row so the gateways hear of the change
        credential.enabled = enabled
        credential.save(update_fields=["enabled", "updated_at"])
        count += 1
    return count


def card_save_by_operator(*, card: ModelCard) -> ModelCard:
    """An operator's edit takes the card over: `bootstrap` will no longer overwrite it."""
    card.source = CardSource.MANUAL
    card.save()
    return card


def cards_set_active(*, cards: Iterable[ModelCard], active: bool) -> int:
    count = 0
    for card in cards:  # save() per card so the gateways hear of the change
        card.active = active
        card.source = CardSource.MANUAL
        card.save(update_fields=["active", "source", "updated_at"])
        count += 1
    return count


@dataclass
class BootstrapResult:
    catalog: SyncResult
    credentials: list[tuple[UpstreamCredential, bool]]


ENV_CREDENTIAL_NAME = "env"


def bootstrap_run(*, provider_env: dict[str, dict[str, str]]) -> BootstrapResult:
    """Load the shipped catalog and one credential per provider whose <NAME>_API_KEY is set."""
    catalog = catalog_sync()
    credentials = [
        credential_upsert(
            provider=provider,
            api_key=values["api_key"],
            base_url=values.get("base_url", ""),
            name=ENV_CREDENTIAL_NAME,
        )
        for provider, values in provider_env.items()
        if values.get("api_key")
    ]
    return BootstrapResult(catalog=catalog, credentials=credentials)
