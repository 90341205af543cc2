"""GET /v1/models and GET /v1/models/{id}."""

from proxy.auth import authenticate_optional
from proxy.errors import ModelNotFound, ServiceUnavailable
from proxy.http import JSON_CONTENT_TYPE, Request, Response
from proxy.routing import RoutingTable
from proxy.runtime import Runtime

MODELS_PREFIX = "/v1/models/"


def routing_or_503(runtime: Runtime) -> RoutingTable:
    if runtime.routing is None:
        raise ServiceUnavailable("The model catalog is not loaded yet; retry in a moment.")
    return runtime.routing


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


async def list_models(request: Request, runtime: Runtime) -> Response:
    """Public; with a key, only the models its allowlist admits."""
    policy = await authenticate_optional(request, runtime)
    routing = routing_or_503(runtime)
    cards = None
    if policy is not None and policy.allowed_models:
        cards = [card for card in routing.cards if policy.allows_card(card)]
    return Response(200, routing.list_json(cards), [JSON_CONTENT_TYPE])


async def retrieve_model(request: Request, runtime: Runtime) -> Response:
    policy = await authenticate_optional(request, runtime)
    routing = routing_or_503(runtime)
    name = request.path[len(MODELS_PREFIX) :]
    card = routing.resolve(name)
    if card is None:
        raise model_not_found(routing, name, param=None)
    if policy is not None:
        policy.check_card(card)
    return Response(200, routing.entry_json(card), [JSON_CONTENT_TYPE])
