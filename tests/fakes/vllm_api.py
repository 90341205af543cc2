"""vLLM's OpenAI-compatible server, the fake's way: OpenAI's Chat Completions rules for the fields
OpenAI defines, and vLLM's own for the rest. vLLM documents extra sampling parameters (top_k,
min_p, repetition_penalty, …) passed at the top level (the SDK's extra_body), and its request
models allow fields they do not define (logged, then ignored), so it refuses none by name.
"""

from typing import Any, ClassVar

from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.openai_rules import CHAT_FIELDS, OpenAIError

# vLLM's documented extra sampling parameters the tests send, with their types.
EXTRA_TYPES: dict[str, tuple[type, ...]] = {
    "top_k": (int,),
    "min_p": (int, float),
    "repetition_penalty": (int, float),
}


class FakeVLLM(FakeOpenAI):
    provider_name = "vLLM"
    response_headers: ClassVar[dict[str, str]] = {"server": "uvicorn"}

    def check_chat(self, body: Any) -> None:
        if isinstance(body, dict):
            for name, types in EXTRA_TYPES.items():
                value = body.get(name)
                if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
                    raise OpenAIError(f"Invalid type for '{name}'.", param=name)
            body = {name: value for name, value in body.items() if name in CHAT_FIELDS}
        super().check_chat(body)
