"""The model a client names, resolved to its card in the in-process routing snapshot."""

from proxy.gateway.errors import InvalidRequest, ModelNotFound, ServiceUnavailable
from proxy.gateway.routing import Card, RoutingTable


class Catalog:
    """The process's current routing snapshot, swapped whole when the catalog changes."""

    __slots__ = ("table",)

    def __init__(self) -> None:
        self.table: RoutingTable | None = None

    def current(self) -> RoutingTable:
        if self.table is None:
            raise ServiceUnavailable("The model catalog is not loaded yet; retry in a moment.")
        return self.table


def model_not_found(routing: RoutingTable, name: str, param: str | None = "model") -> ModelNotFound:
    suggestions = routing.suggest(name)
    hint = (
        " Did you mean " + ", ".join(f"'{title}'" for title in suggestions) + "?"
        if suggestions
        else ""
    )
    return ModelNotFound(
        f"The model '{name}' does not exist.{hint} GET /v1/models lists every model.",
        param=param,
    )


# Where each type of model is served, for the error that sends a client there.
ENDPOINT_FOR_TYPE = {"chat": "POST /v1/chat/completions", "embedding": "POST /v1/embeddings"}


def resolve_card(routing: RoutingTable, model: str, *, card_type: str) -> Card:
    """The card a client's `model` names: 404 with suggestions, 400 for the wrong type."""
    card = routing.resolve(model)
    if card is None:
        raise model_not_found(routing, model)
    if card.type != card_type:
        raise InvalidRequest(
            f"'{card.title}' is {'an' if card.type[0] in 'aeiou' else 'a'} {card.type} model; "
            f"use {ENDPOINT_FOR_TYPE[card.type]}.",
            param="model",
            code="wrong_model_type",
        )
    return card
