"""Reads of the catalog: the gateway's routing snapshot, built from the database."""

import logging
from collections.abc import Collection

from billing.pricing import Prices
from proxy.catalog.crypto import CredentialDecryptionError
from proxy.catalog.price_tiers import CatalogDataError, build_prices
from proxy.gateway.routing import Card, RoutingTable, Upstream
from proxy.models import ModelCard, UpstreamCredential

logger = logging.getLogger(__name__)


def _prices(card: ModelCard) -> Prices:
    four = {
        "input": card.input_price,
        "output": card.output_price,
        "cache_read": card.cache_read_price,
        "cache_write": card.cache_write_price,
    }
    try:
        return build_prices(**four, tiers=card.price_tiers or {}, where=f"{card.title} pricing")
    except CatalogDataError:
        # Saved around the admin's validation: the standard prices, never none at all.
        logger.exception("card %s has malformed price tiers; its standard prices apply", card)
        return Prices(
            card.input_price, card.output_price, card.cache_read_price, card.cache_write_price
        )


def load_routing_table(version: int) -> RoutingTable:
    """Read the active catalog and enabled credentials (synchronous: call it off the loop)."""
    cards = [
        Card(
            id=card.pk,
            title=card.title,
            provider=card.provider,
            upstream_id=card.upstream_id,
            type=card.type,
            context_length=card.context_length,
            max_output_tokens=card.max_output_tokens,
            prices=_prices(card),
            supports_tools=card.supports_tools,
            supports_vision=card.supports_vision,
            supports_json=card.supports_json,
            supports_reasoning=card.supports_reasoning,
            first_byte_timeout=card.first_byte_timeout,
            credential_ids=frozenset(c.pk for c in card.credentials.all()),
            names=tuple(card.names()),
            created=int(card.created_at.timestamp()),
        )
        for card in ModelCard.objects.filter(active=True).prefetch_related("credentials")
    ]
    upstreams = []
    for credential in UpstreamCredential.objects.filter(enabled=True):
        try:
            api_key = credential.get_api_key()
        except CredentialDecryptionError:
            logger.error("upstream credential %s cannot be decrypted; skipped", credential)
            continue
        upstreams.append(
            Upstream(
                id=credential.pk,
                provider=credential.provider,
                name=credential.name,
                base_url=credential.effective_base_url,
                api_key=api_key,
                priority=credential.priority,
                weight=credential.weight,
            )
        )
    return RoutingTable(cards, upstreams, version)


def card_prices(*, card_id: int) -> Prices | None:
    """A card's prices as the gateway prices with them now; None for a card no longer there."""
    card = ModelCard.objects.filter(pk=card_id).first()
    return _prices(card) if card is not None else None


def credential_names(*, ids: Collection[int]) -> dict[int, str]:
    """The operator's names of these upstream credentials (deleted ones are absent)."""
    return dict(UpstreamCredential.objects.filter(pk__in=list(ids)).values_list("pk", "name"))


def cards_without_upstream(*, cards: list[ModelCard]) -> set[int]:
    """Ids of `cards` no enabled credential serves (the gateway answers them 503 no_upstream):
    a card pinned to credentials needs one of those enabled, others one of their provider."""
    enabled = list(UpstreamCredential.objects.filter(enabled=True).values_list("pk", "provider"))
    providers = {provider for _, provider in enabled}
    enabled_ids = {pk for pk, _ in enabled}
    pinned: dict[int, set[int]] = {}
    for card_id, credential_id in ModelCard.credentials.through.objects.filter(
        modelcard_id__in=[card.pk for card in cards]
    ).values_list("modelcard_id", "upstreamcredential_id"):
        pinned.setdefault(card_id, set()).add(credential_id)
    return {
        card.pk
        for card in cards
        if not (pinned[card.pk] & enabled_ids if card.pk in pinned else card.provider in providers)
    }
