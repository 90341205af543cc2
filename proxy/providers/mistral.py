"""Mistral: OpenAI's wire format with its own names, fewer fields and 9-character tool-call ids."""

import hashlib
import re
from typing import Any

from proxy.gateway.errors import GatewayError, InvalidRequest
from proxy.gateway.routing import Card
from proxy.providers.openai import OpenAIAdapter, OpenAIStream, without_cache_control
from proxy.providers.priced import check_service_tier

# Accepted by OpenAI but meaningless to Mistral (bookkeeping on OpenAI's side): dropped.
DROPPED = frozenset(
    {
        "user",
        "store",
        "service_tier",
        "safety_identifier",
        "prompt_cache_retention",
        "prompt_cache_options",
        "moderation",
        "verbosity",
        "modalities",
    }
)
# Whose meaning Mistral cannot honour: refused, rather than silently ignored.
UNSUPPORTED = frozenset({"logit_bias", "audio", "web_search_options", "functions", "function_call"})
MESSAGE_FIELDS = {
    "system": ("role", "content"),
    "user": ("role", "content"),
    "assistant": ("role", "content", "tool_calls", "prefix"),
    "tool": ("role", "content", "tool_call_id", "name"),
}
# Mistral's names for fields the client named the OpenAI way, to report errors in its terms.
CLIENT_NAMES = {"random_seed": "seed", "output_dimension": "dimensions"}
_MISTRAL_ID = re.compile(r"[A-Za-z0-9]{9}")
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def mistral_tool_call_id(call_id: Any) -> Any:
    """Mistral accepts only [a-zA-Z0-9]{9}; map other ids (OpenAI's call_…) stably onto that."""
    if not isinstance(call_id, str) or _MISTRAL_ID.fullmatch(call_id):
        return call_id
    number = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    chars = []
    for _ in range(9):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(chars)


def _message(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    role = "system" if message.get("role") == "developer" else message.get("role")
    fields = MESSAGE_FIELDS.get(role)  # type: ignore[arg-type]
    if fields is None:
        return message  # an unknown role: let Mistral say what is wrong with it
    out = {key: message[key] for key in fields if key in message}
    out["role"] = role
    if "tool_call_id" in out:
        out["tool_call_id"] = mistral_tool_call_id(out["tool_call_id"])
    if isinstance(out.get("tool_calls"), list):
        out["tool_calls"] = [
            {**call, "id": mistral_tool_call_id(call.get("id"))} if isinstance(call, dict) else call
            for call in out["tool_calls"]
        ]
    return out


class MistralAdapter(OpenAIAdapter):
    provider = "mistral"
    chat_path = "/v1/chat/completions"
    embeddings_path = "/v1/embeddings"
    models_path = "/v1/models"
    service_tiers = False  # Mistral has one tier (service_tier is dropped on the way)

    def translate_chat_body(
        self, body: dict[str, Any], card: Card, *, stream: bool
    ) -> dict[str, Any]:
        check_service_tier(body, card, forwarded=False)  # Mistral has one tier
        for field in UNSUPPORTED:
            if field in body:
                raise InvalidRequest(
                    f"'{field}' is not supported by Mistral models such as {card.title}.",
                    param=field,
                    code="unsupported_parameter",
                )
        if "audio" in (body.get("modalities") or ()):
            raise InvalidRequest(
                f"{card.title} cannot produce audio.",
                param="modalities",
                code="unsupported_parameter",
            )
        out = {key: value for key, value in body.items() if key not in DROPPED}
        out.pop("stream_options", None)  # Mistral always reports usage on its last chunk
        out["model"] = card.upstream_id
        if "seed" in out:
            out["random_seed"] = out.pop("seed")
        if "max_completion_tokens" in out:
            limit = out.pop("max_completion_tokens")
            out.setdefault("max_tokens", limit)
        if isinstance(out.get("messages"), list):
            messages = without_cache_control(out["messages"])
            out["messages"] = [_message(message) for message in messages]
        return out

    def chat_stream(self, card: Card, body: dict[str, Any]) -> OpenAIStream:
        return OpenAIStream(card, body, tiers=False)

    def translate_embeddings_body(self, body: dict[str, Any], card: Card) -> dict[str, Any]:
        out = {key: value for key, value in body.items() if key != "user"}
        out["model"] = card.upstream_id
        if "dimensions" in out:
            out["output_dimension"] = out.pop("dimensions")
        return out

    def client_error(self, status: int, payload: bytes, card: Card) -> GatewayError:
        error = super().client_error(status, payload, card)
        if isinstance(error, InvalidRequest) and error.param is None:
            # Mistral's validation errors (422) locate the field as ["body", "field", …].
            match = re.search(
                r'"loc":\s*\[\s*"body",\s*"([A-Za-z_]\w{0,63})"', payload.decode(errors="replace")
            )
            if match:
                error.param = CLIENT_NAMES.get(match.group(1), match.group(1))
        return error
