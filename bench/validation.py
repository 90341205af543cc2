"""Cost of checking an inbound request's fields (proxy/gateway/dialects/), per request.

    .venv/bin/python bench/validation.py

Pure CPU: validate_chat on a short chat request, on a tool-using conversation (the body of
bench/translators.py) and on one with image parts, and validate_embeddings on a batch.
"""

import os
import timeit
from collections.abc import Callable

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenbyte.settings_test")
django.setup()

from proxy.gateway.dialects.openai_chat import validate_chat  # noqa: E402
from proxy.gateway.dialects.openai_embeddings import validate_embeddings  # noqa: E402

SHORT = {
    "model": "GPT-4o",
    "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Say hello"},
    ],
    "temperature": 0.7,
    "max_tokens": 256,
    "stream": True,
    "stream_options": {"include_usage": True},
}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}
CONVERSATION = {  # as in bench/translators.py
    "model": "x",
    "messages": [
        {"role": "system", "content": "You are helpful. " * 20},
        *[
            {"role": role, "content": "Some earlier turn of the conversation. " * 10}
            for role in ("user", "assistant") * 5
        ],
        {"role": "user", "content": "Weather in Paris?"},
    ],
    "tools": [TOOL] * 3,
    "temperature": 0.5,
    "max_tokens": 500,
}
IMAGES = {
    "model": "GPT-4o",
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare these"},
                *[
                    {"type": "image_url", "image_url": {"url": f"https://example.com/{i}.png"}}
                    for i in range(4)
                ],
            ],
        }
    ],
    "response_format": {"type": "json_object"},
    "top_p": 0.9,
}
EMBEDDINGS = {"model": "text-embedding-3-small", "input": ["some text to embed"] * 64}


def per_call(fn: Callable[[], object], number: int) -> float:
    return timeit.timeit(fn, number=number) / number * 1e6


def main() -> None:
    cases: dict[str, Callable[[], object]] = {
        "chat, short": lambda: validate_chat(SHORT),
        "chat, 12 turns + 3 tools": lambda: validate_chat(CONVERSATION),
        "chat, 5 content parts": lambda: validate_chat(IMAGES),
        "embeddings, 64 inputs": lambda: validate_embeddings(EMBEDDINGS),
    }
    print("request validation, µs per request")
    for name, fn in cases.items():
        print(f"  {name:26} {per_call(fn, 50000):7.2f}")


if __name__ == "__main__":
    main()
