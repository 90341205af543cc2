"""The gateway's lean ASGI app: its own router, its own lifespan, no Django middleware."""

import asyncio
import contextlib
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
from proxy.gateway.routes import (
    chat,
    embeddings,
    generation,
    messages,
    models,
    responses,
    stored_responses,
)
from proxy.gateway.runtime import Runtime
from proxy.gateway.stores import GatewayStores
from proxy.gateway.tracing import REQUEST_HEADERS

logger = logging.getLogger(__name__)

# A route's handler takes the request; what else it uses is bound when the runtime starts.
Handler = Callable[[Request], Awaitable[Response | None]]
Routes = dict[str, dict[str, Handler]]
GATEWAY_PATHS = ("/v1/", "/healthz", "/readyz")
# At shutdown, how long requests still being served may take to end (the server has waited
# its graceful timeout and cancelled them by then) before the runtime stops under them.
STOP_WAIT_SECONDS = 5.0
# The paths served, known before a runtime exists (misrouted.py points clients at them).
EXACT_PATHS = frozenset(
    {
        "/v1/models",
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/messages",
        "/v1/messages/count_tokens",
        responses.RESPONSES_PATH,
        generation.GENERATION_PATH,
        "/healthz",
        "/readyz",
    }
)
PREFIXES = (models.MODELS_PREFIX, stored_responses.RESPONSES_PREFIX)


def serves(path: str) -> bool:
    return path.startswith(GATEWAY_PATHS) or path == "/v1"


class RouteTable:
    """(path -> {method -> handler}); paths under a prefix go to the prefix's handlers."""

    __slots__ = ("exact", "new_id", "prefixed", "traced")

    def __init__(self, runtime: Runtime) -> None:
        self.new_id = runtime.ids
        self.traced = runtime.spans is not None
        pipeline = runtime.pipeline()
        keys, catalog, generations = runtime.keys, runtime.catalog, runtime.generations.get
        stored = runtime.responses
        # Closures, not partial(..., name=value): no keyword dict built per request.
        self.exact: Routes = {
            "/v1/models": {"GET": lambda request: models.list_models(request, keys, catalog)},
            "/v1/chat/completions": {
                "POST": lambda request: chat.chat_completions(request, pipeline)
            },
            "/v1/embeddings": {"POST": lambda request: embeddings.embeddings(request, pipeline)},
            "/v1/messages": {"POST": lambda request: messages.messages(request, pipeline)},
            "/v1/messages/count_tokens": {
                "POST": lambda request: messages.count_tokens(request, pipeline)
            },
            responses.RESPONSES_PATH: {
                "POST": lambda request: responses.responses(request, pipeline, stored)
            },
            generation.GENERATION_PATH: {
                "GET": lambda request: generation.generation(request, keys, generations)
            },
            "/healthz": {"GET": health.healthz, "HEAD": health.healthz},
            "/readyz": dict.fromkeys(
                ("GET", "HEAD"), lambda request: health.readyz(request, runtime)
            ),
        }
        self.prefixed: tuple[tuple[str, dict[str, Handler]], ...] = (
            (
                models.MODELS_PREFIX,
                {"GET": lambda request: models.retrieve_model(request, keys, catalog)},
            ),
            (
                stored_responses.RESPONSES_PREFIX,
                dict.fromkeys(
                    ("GET", "DELETE", "POST"),
                    lambda request: stored_responses.stored_response(request, keys, stored),
                ),
            ),
        )

        if set(self.exact) != EXACT_PATHS or tuple(p for p, _ in self.prefixed) != PREFIXES:
            raise RuntimeError("EXACT_PATHS and PREFIXES must name the routes")

    def find(self, method: str, path: str) -> Handler:
        methods = self.exact.get(path)
        if methods is None:
            for prefix, prefixed in self.prefixed:
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
    def __init__(self, stores: Callable[[], GatewayStores]) -> None:
        self.stores = stores  # called once the gateway starts (Django is set up by then)
        self.runtime: Runtime | None = None
        self._routes: RouteTable | None = None
        self._starting = asyncio.Lock()
        # Requests being served: at shutdown the runtime (and its metering) stops only once
        # they have ended, so the events of requests the server cancelled still go out.
        self._in_flight = 0
        self._idle: asyncio.Event | None = None  # set when none is left, once stopping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        routes = self._routes or await self._start()
        request = Request(scope, receive, send, routes.new_id)
        if routes.traced:  # the client's trace context, read when its request span is built
            REQUEST_HEADERS.set(request.headers)
        self._in_flight += 1
        try:
            try:
                response = await routes.find(request.method, request.path)(request)
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
                # request.send: body logging's capture may stand in for `send` (its bodies).
                await send_response(request.send, response, request.request_id)
        finally:
            if request.capture is not None:  # what the client got is all sent, or never will be
                request.capture.close()
            self._in_flight -= 1
            if not self._in_flight and self._idle is not None:
                self._idle.set()

    async def start(self) -> Runtime:
        """Open the shared clients once, whether or not the server sent a lifespan startup."""
        async with self._starting:
            if self.runtime is None:
                runtime = Runtime(self.stores())
                await runtime.start()
                self.runtime, self._routes = runtime, RouteTable(runtime)
        return self.runtime

    async def _start(self) -> RouteTable:
        await self.start()
        if self._routes is None:  # pragma: no cover  # start() sets both, or raises
            raise RuntimeError("the gateway did not start")
        return self._routes

    async def stop(self) -> None:
        if self._in_flight:
            self._idle = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), STOP_WAIT_SECONDS)
        if self.runtime is not None:
            runtime, self.runtime, self._routes = self.runtime, None, None
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
