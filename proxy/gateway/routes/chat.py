"""POST /v1/chat/completions: parse, run the shared pipeline, shape OpenAI's answer."""

from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings

from billing.usage import Usage
from proxy.gateway.dialects.openai_chat import validate_chat
from proxy.gateway.errors import GatewayError
from proxy.gateway.http import Request, Response
from proxy.gateway.pipeline.call import Pipeline
from proxy.gateway.pipeline.calls import priced_usage
from proxy.gateway.pipeline.ceiling import OutputLimit
from proxy.gateway.pipeline.relay import StreamOutput, relay_stream
from proxy.gateway.pipeline.server_tools import chat_server_tools
from proxy.gateway.sse import DONE, Event, frame
from proxy.providers import adapter_for
from proxy.providers.base import StreamTranslator
from proxy.upstream.request import UpstreamRequest


async def chat_completions(request: Request, pipeline: Pipeline) -> Response | None:
    policy = await pipeline.authenticate(request)
    with pipeline.record(request, policy, "chat.completions") as record:
        body = await request.json(settings.TOKENBYTE_MAX_BODY_BYTES)
        call = validate_chat(body)
        card = await pipeline.admit(record, call.model, card_type="chat", stream=call.stream)
        tier = body.get("service_tier")
        await pipeline.reserve(
            record,
            request.raw,
            chat_output_limit(body),
            service_tier=tier if isinstance(tier, str) else None,
            tools=chat_server_tools(body, card),
        )
        adapter = adapter_for(card.provider)

        def build(upstream: Any) -> UpstreamRequest:
            return adapter.chat_request(body, card, upstream, stream=call.stream)

        opened = await pipeline.open_upstream(record, adapter, build, stream=call.stream)
        if not call.stream:
            parse = lambda payload: adapter.chat_response(payload, card, body)  # noqa: E731
            return await pipeline.complete(record, opened, parse, _priced_completion)
        output = ChatStreamOutput(adapter.chat_stream(card, body), body, call.include_usage)
        await relay_stream(request, record, opened, output)
        return None


def chat_output_limit(body: dict[str, Any]) -> OutputLimit:
    """OpenAI's output limit: max_completion_tokens, else max_tokens (validated already);
    lowered in whichever the client sent, or in max_completion_tokens when it sent none."""
    field = "max_completion_tokens" if body.get("max_completion_tokens") is not None else None
    if field is None and body.get("max_tokens") is not None:
        field = "max_tokens"

    def lower(tokens: int) -> None:
        body[field or "max_completion_tokens"] = tokens

    return OutputLimit(body.get(field) if field else None, body.get("n") or 1, lower)


def _priced_completion(data: dict[str, Any], usage: Usage, cost: Decimal) -> dict[str, Any]:
    data["usage"] = priced_usage(data.get("usage"), usage, cost)
    return data


class ChatStreamOutput(StreamOutput):
    """OpenAI chat.completion.chunk frames, the optional usage chunk and data: [DONE]."""

    __slots__ = ("body", "include_usage", "pending", "translator")

    def __init__(
        self, translator: StreamTranslator, body: dict[str, Any], include_usage: bool
    ) -> None:
        self.translator = translator
        self.body = body
        self.include_usage = include_usage
        # Chunks made from what came with a failing upstream event: sent before the error.
        self.pending = b""

    @property
    def done(self) -> bool:
        return self.translator.done

    def frames(self, events: list[Event]) -> bytes:
        feed = self.translator.feed
        out: list[bytes] = []
        try:
            for event in events:
                out += [frame(orjson.dumps(piece)) for piece in feed(event)]
        except GatewayError:
            self.pending = b"".join(out)
            raise
        return b"".join(out)

    def tail(self) -> bytes:
        return b"".join([frame(orjson.dumps(piece)) for piece in self.translator.finish()])

    def final_usage(self) -> Usage:
        return self.translator.final_usage(self.body.get("messages"))

    def response_id(self) -> str:
        return self.translator.response_id

    def closing(self, usage: Usage, cost: Decimal) -> bytes:
        if not self.include_usage:
            return DONE
        return frame(orjson.dumps(_usage_chunk(self.translator, usage, cost))) + DONE

    def failure(self, error: GatewayError) -> bytes:
        # An error event, and no [DONE]: the SDKs raise, and nobody mistakes it for the end.
        return self.pending + frame(error.openai_body())


def _usage_chunk(translator: StreamTranslator, usage: Usage, cost: Decimal) -> dict[str, Any]:
    return {
        "id": translator.response_id,
        "object": "chat.completion.chunk",
        "created": translator.created,
        "model": translator.card.title,
        "choices": [],
        "usage": priced_usage(None, usage, cost),
    }
