"""API calls that missed /v1: a JSON 404 naming the right URL instead of the console's HTML page.

A client given the server's root as its base URL posts to `/chat/completions` or, like the AI
SDK's anthropic provider (`${baseURL}/messages`), to `/messages`. Console paths are never
matched: `/models/` is the console's catalog page and `/models/<card id>/` a card's (an SDK asks
for `/models/{id}` without the slash), and a browser asking for `/models` still gets Django's
redirect there.
"""

import re

from proxy.gateway.app import EXACT_PATHS, PREFIXES
from proxy.gateway.errors import NotFound

# OpenAI's and Anthropic's endpoints as a client without the /v1 prefix asks for them.
_API_PATH = re.compile(
    r"/(?:chat/completions|completions|embeddings|responses(?:/.*)?|messages(?:/.*)?"
    r"|models|models/(?!\d+/$)[^/].*)"
)
_GEMINI_PATH = re.compile(r"/v1(?:beta|alpha)/.*")
_SERVED = (
    "POST /v1/chat/completions, POST /v1/responses, POST /v1/messages, POST /v1/embeddings "
    "and GET /v1/models"
)


def _served(path: str) -> bool:
    return path in EXACT_PATHS or any(
        path.startswith(prefix) and len(path) > len(prefix) for prefix in PREFIXES
    )


def misrouted(method: str, path: str, accept: bytes) -> bytes | None:
    """The 404's body, in the shape the client reads, for an API path outside /v1; else None."""
    if _GEMINI_PATH.fullmatch(path):
        hint = f"Gemini's own API is not served here; TokenByte serves {_SERVED}, to every model."
    elif not _API_PATH.fullmatch(path) or (path == "/models" and b"text/html" in accept):
        return None
    elif _served("/v1" + path):
        hint = f"The API is under /v1: use {method} /v1{path} (a client's base URL ends in /v1)."
    else:
        hint = f"TokenByte serves {_SERVED}."
    error = NotFound(f"Unknown endpoint: {method} {path}. {hint}", code="unknown_url")
    return error.anthropic_body() if path.startswith("/messages") else error.openai_body()
