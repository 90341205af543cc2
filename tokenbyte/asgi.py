"""ASGI entry point: /v1/* and the health probes go to the gateway, /metrics to its protected
exposition (tokenbyte/metrics_endpoint.py), everything else to Django (except API paths that
lack /v1, which get a JSON 404 naming the right URL: proxy/gateway/misrouted.py).

Two front-door rules hold here, under any server: at most TOKENBYTE_MAX_CONCURRENCY requests
in flight per process (the console's too; past it a 503 with Retry-After), and X-Forwarded-For
and -Proto believed only from the addresses in FORWARDED_ALLOW_IPS.
"""

import os
from typing import Any, cast

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenbyte.settings")

django_application = get_asgi_application()  # sets Django up before the gateway imports models

from django.conf import settings  # noqa: E402
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware  # noqa: E402

from proxy.gateway.app import GatewayApp, serves  # noqa: E402
from proxy.gateway.errors import ServiceUnavailable  # noqa: E402
from proxy.gateway.http import Receive, Response, Scope, Send, send_response  # noqa: E402
from proxy.gateway.ids import IdSource  # noqa: E402
from proxy.gateway.misrouted import misrouted  # noqa: E402
from tokenbyte import metrics_endpoint  # noqa: E402
from tokenbyte.gateway_stores import gateway_stores  # noqa: E402

RETRY_AFTER_SECONDS = 1


class Dispatcher:
    """Sends each connection to the gateway or to Django; the gateway owns the lifespan."""

    def __init__(
        self,
        gateway: GatewayApp,
        django_app: Any,
        *,
        max_concurrency: int,
        forwarded_allow_ips: list[str],
        metrics_token: str = "",
    ) -> None:
        self.gateway = gateway
        self.metrics_token = metrics_token
        self.django_app = django_app
        self.max_concurrency = max_concurrency
        self.in_flight = 0
        self._ids = IdSource()
        # Without a trusted forwarder no header is looked at: the peer is the client.
        self._forwarded: Any = (
            # uvicorn types apps with its own scope TypedDicts; ours take plain dicts.
            ProxyHeadersMiddleware(cast(Any, self._dispatch), trusted_hosts=forwarded_allow_ips)
            if forwarded_allow_ips
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._dispatch(scope, receive, send)
            return
        if self.in_flight >= self.max_concurrency:
            await self._overloaded(scope, send)
            return
        self.in_flight += 1
        try:
            if self._forwarded is not None:
                await self._forwarded(scope, receive, send)
            elif serves(scope["path"]):  # _dispatch inline: the hot path has no extra frame
                await self.gateway(scope, receive, send)
            else:
                await self._console(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or (scope["type"] == "http" and serves(scope["path"])):
            await self.gateway(scope, receive, send)
        elif scope["type"] == "http":
            await self._console(scope, receive, send)
        else:
            await self.django_app(scope, receive, send)

    async def _console(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == metrics_endpoint.PATH:
            await metrics_endpoint.serve_metrics(
                scope, send, token=self.metrics_token, request_id="req_" + self._ids()
            )
            return
        accept = next((value for name, value in scope["headers"] if name == b"accept"), b"")
        body = misrouted(scope["method"], scope["path"], accept)
        if body is None:
            await self.django_app(scope, receive, send)
            return
        response = Response(404, body, [(b"content-type", b"application/json")])
        await send_response(send, response, "req_" + self._ids())

    async def _overloaded(self, scope: Scope, send: Send) -> None:
        error = ServiceUnavailable(
            f"The server is at its limit of {self.max_concurrency} requests in flight; "
            f"retry in {RETRY_AFTER_SECONDS} s.",
            code="server_overloaded",
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
        ]
        response = Response(error.status, error.body_for(scope["path"]), headers)
        await send_response(send, response, "req_" + self._ids())


def build_application() -> Dispatcher:
    return Dispatcher(
        GatewayApp(gateway_stores),
        django_application,
        max_concurrency=settings.TOKENBYTE_MAX_CONCURRENCY,
        forwarded_allow_ips=settings.FORWARDED_ALLOW_IPS,
        metrics_token=settings.TOKENBYTE_METRICS_TOKEN,
    )


application = build_application()
