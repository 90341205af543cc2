"""ASGI entry point: /v1/* and the health probes go to the gateway, everything else to Django."""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenbyte.settings")

django_application = get_asgi_application()  # sets Django up before the gateway imports models

from proxy.app import GatewayApp, serves  # noqa: E402


class Dispatcher:
    """Sends each connection to the gateway or to Django; the gateway owns the lifespan."""

    def __init__(self, gateway: GatewayApp, django_app: Any) -> None:
        self.gateway = gateway
        self.django_app = django_app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" or (scope["type"] == "http" and serves(scope["path"])):
            await self.gateway(scope, receive, send)
        else:
            await self.django_app(scope, receive, send)


def build_application() -> Dispatcher:
    return Dispatcher(GatewayApp(), django_application)


application = build_application()
