"""POST /v1/embeddings."""

from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings

from billing.pricing import cost_text
from billing.usage import Usage
from proxy.gateway.dialects.openai_embeddings import validate_embeddings
from proxy.gateway.http import Request, Response
from proxy.gateway.pipeline.call import Pipeline
from proxy.providers import adapter_for
from proxy.upstream.request import UpstreamRequest


async def embeddings(request: Request, pipeline: Pipeline) -> Response:
    policy = await pipeline.authenticate(request)
    with pipeline.record(request, policy, "embeddings") as record:
        body = await request.json(settings.TOKENBYTE_MAX_BODY_BYTES)
        model = validate_embeddings(body)
        card = await pipeline.admit(record, model, card_type="embedding", stream=False)
        await pipeline.reserve(record, request.raw, None)
        adapter = adapter_for(card.provider)

        def build(upstream: Any) -> UpstreamRequest:
            return adapter.embeddings_request(body, card, upstream)

        opened = await pipeline.open_upstream(record, adapter, build, stream=False)
        parse = lambda payload: adapter.embeddings_response(payload, card, body)  # noqa: E731
        return await pipeline.complete(record, opened, parse, _priced_embeddings)


def _priced_embeddings(data: dict[str, Any], usage: Usage, cost: Decimal) -> dict[str, Any]:
    # Embeddings have no completion: OpenAI's two-field usage, plus the cost.
    data["usage"] = {
        "prompt_tokens": usage.prompt_tokens,
        "total_tokens": usage.prompt_tokens,
        "cost": orjson.Fragment(cost_text(cost).encode()),
    }
    return data
