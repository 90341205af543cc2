"""The opaque `encrypted_content` of the reasoning items the gateway writes for other providers'
models: what that provider needs back to continue a turn it reasoned about.

Claude needs its signed thinking blocks back with the tool calls they led to; Gemini 3 needs
each function call's thought signature. Both are the provider's own signed data, which the
provider checks; the blob only carries them (base64 of JSON, marked with the provider so a
conversation moved to another model drops them). OpenAI's own encrypted reasoning is OpenAI's
and passes through untouched to OpenAI cards; sent to another provider it is dropped.
"""

import base64
import binascii
from typing import Any

import orjson

from proxy.gateway.dialects.validation import invalid_type

PREFIX = "tokenbyte.r1."


def write_reasoning(
    provider: str, thinking_blocks: list[dict[str, Any]], signatures: dict[str, str]
) -> str | None:
    if not thinking_blocks and not signatures:
        return None
    held: dict[str, Any] = {"provider": provider}
    if thinking_blocks:
        held["thinking_blocks"] = thinking_blocks
    if signatures:
        held["signatures"] = signatures
    return PREFIX + base64.urlsafe_b64encode(orjson.dumps(held)).decode()


def read_reasoning(item: dict[str, Any], where: str, provider: str) -> dict[str, Any]:
    """A reasoning input item's blob for `provider`: thinking blocks and call signatures (empty
    when the item carries none, or another provider's or OpenAI's)."""
    blob = item.get("encrypted_content")
    if blob is None:
        return {}
    if not isinstance(blob, str):
        raise invalid_type(f"{where}.encrypted_content", "a string", blob)
    if not blob.startswith(PREFIX):
        return {}  # OpenAI's, or made for a model no longer in the conversation
    try:
        held = orjson.loads(base64.urlsafe_b64decode(blob[len(PREFIX) :]))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return {}
    if not isinstance(held, dict) or held.get("provider") != provider:
        return {}
    blocks = held.get("thinking_blocks")
    signatures = held.get("signatures")
    return {
        "thinking_blocks": [b for b in blocks if isinstance(b, dict)]
        if isinstance(blocks, list)
        else [],
        "signatures": {
            k: v for k, v in signatures.items() if isinstance(k, str) and isinstance(v, str)
        }
        if isinstance(signatures, dict)
        else {},
    }
