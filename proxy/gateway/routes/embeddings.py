"""POST /v1/embeddings."""

from typing import Any

import orjson
from django.conf import settings

from proxy.gateway.auth.authenticate import authenticate
from proxy.gateway.dialects.openai_embeddings import validate_embeddings
from proxy.gateway.errors import GatewayError
from proxy.gateway.http import JSON_CONTENT_TYPE, Request, Response
from proxy.gateway.pipeline.call import ZERO_USAGE, open_upstream, start_call
from proxy.gateway.pipeline.calls import priced_usage
from proxy.gateway.pipeline.resolve import resolve_card
from proxy.gateway.runtime import Runtime
from proxy.providers import adapter_for
from proxy.upstream.failures import cite_request, log_failed_answer
from proxy.upstream.request import UpstreamRequest


async def embeddings(request: Request, runtime: Runtime) -> Response:
    policy = await authenticate(request, runtime)
    body = await request.json(settings.TOKENBYTE_MAX_BODY_BYTES)
    model = validate_embeddings(body)
    card = resolve_card(runtime, model, card_type="embedding")
    record = await start_call(request, runtime, policy, card, "embeddings", stream=False)
    adapter = adapter_for(card.provider)

    def build(upstream: Any) -> UpstreamRequest:
        return adapter.embeddings_request(body, card, upstream)

    opened = await open_upstream(runtime, record, adapter, build, stream=False)
    try:
        data, usage = adapter.embeddings_response(opened.body, card, body)
    except GatewayError as error:
        runtime.metering.emit(
            record.event(status=error.status, usage=ZERO_USAGE, error_code=error.code)
        )
        log_failed_answer(record, cite_request(error, record.request_id))
        raise
    record.mark_first_byte()
    event = record.event(status=200, usage=usage)
    data["usage"] = priced_usage(data.get("usage"), usage, event.cost)
    # Embeddings have no completion: keep OpenAI's two-field usage plus the cost.
    data["usage"] = {
        "prompt_tokens": usage.prompt_tokens,
        "total_tokens": usage.prompt_tokens,
        "cost": data["usage"]["cost"],
    }
    runtime.metering.emit(event)
    return Response(200, orjson.dumps(data), [JSON_CONTENT_TYPE, *record.headers])
