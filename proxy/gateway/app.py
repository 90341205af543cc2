"""The gateway's lean ASGI app: its own router, its own lifespan, no Django middleware."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from proxy.gateway import health
from proxy.gateway.errors import GatewayError, MethodNotAllowed, NotFound
from proxy.gateway.http import (
    ClientDisconnected,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    send_response,
)
from proxy.gateway.routes import chat, embeddings, messages, models
from proxy.gateway.runtime import Runtime

logger = logging.getLogger(__name__)

Handler = Callable[[Request, Runtime], Awaitable[Response | None]]

# (path -> {method -> handler}); paths under a prefix go to the prefix's handlers.
EXACT_ROUTES: dict[str, dict[str, Handler]] = {
    "/v1/models": {"GET": models.list_models},
    "/v1/chat/completions": {"POST": chat.chat_completions},
    "/v1/embeddings": {"POST": embeddings.embeddings},
    "/v1/messages": {"POST": messages.messages},
    "/v1/messages/count_tokens": {"POST": messages.count_tokens},
    "/healthz": {"GET": health.healthz, "HEAD": health.healthz},
    "/readyz": {"GET": health.readyz, "HEAD": health.readyz},
}
PREFIX_ROUTES: tuple[tuple[str, dict[str, Handler]], ...] = (
    (models.MODELS_PREFIX, {"GET": models.retrieve_model}),
)
GATEWAY_PATHS = ("/v1/", "/healthz", "/readyz")


def serves(path: str) -> bool:
    return path.startswith(GATEWAY_PATHS) or path == "/v1"


def _find_handler(method: str, path: str) -> Handler:
    methods = EXACT_ROUTES.get(path)
    if methods is None:
        for prefix, prefixed in PREFIX_ROUTES:
            if path.startswith(prefix) and len(path) > len(prefix):
                methods = prefixed
                break
    if methods is None:
        raise NotFound(f"Unknown endpoint: {method} {path}.", code="unknown_url")
    handler = methods.get(method)
    if handler is None:
        raise MethodNotAllowed(
            f"{method} is not allowed on {path}; use {', '.join(methods)}.",
            headers=[(b"allow", ", ".join(methods).encode())],
        )
    return handler


class GatewayApp:
    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self._starting = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        runtime = self.runtime or await self.start()
        request = Request(scope, receive, send, runtime.ids)
        try:
            response = await _find_handler(request.method, request.path)(request, runtime)
        except GatewayError as exc:
            response = Response(exc.status, exc.body_for(request.path), [*exc.headers])
            response.headers.append((b"content-type", b"application/json"))
        except ClientDisconnected:
            return
        except Exception:
            logger.exception("unhandled error in %s %s", request.method, request.path)
            error = GatewayError("Internal error; the request id identifies it in our logs.")
            response = Response(500, error.body_for(request.path))
        if response is not None:
            await send_response(send, response, request.request_id)

    async def start(self) -> Runtime:
        """Open the shared clients once, whether or not the server sent a lifespan startup."""
        async with self._starting:
            if self.runtime is None:
                runtime = Runtime()
                await runtime.start()
                self.runtime = runtime
        return self.runtime

    async def stop(self) -> None:
        if self.runtime is not None:
            runtime, self.runtime = self.runtime, None
            await runtime.stop()

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    logger.exception("gateway start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return
