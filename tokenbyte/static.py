"""WhiteNoise for an ASGI server: the file body streams as an async iterator.

WhiteNoise hands Django a FileResponse over a plain file, which Django's ASGI handler can only
consume through a thread per chunk, warning on every static file. Static files are small and
local, so reading their chunks inline is cheaper than that.
"""

from collections.abc import AsyncIterator, Iterable
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware


async def _chunks(content: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in content:
        yield chunk


class AsyncFriendlyWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    @staticmethod
    def serve(static_file: Any, request: HttpRequest) -> HttpResponseBase:
        response = WhiteNoiseMiddleware.serve(static_file, request)
        if getattr(response, "streaming", False):
            response.streaming_content = _chunks(response.streaming_content)
        return response
