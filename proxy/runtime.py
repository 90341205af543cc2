"""Per-process gateway state, opened by the ASGI lifespan and closed with it."""

import asyncio
import contextlib
import logging
import time

import httpx
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings

from proxy.db import run_in_db_thread
from proxy.key_cache import KeyResolver
from proxy.routing import RoutingTable, load_routing_table
from proxy.routing_version import routing_version_get

logger = logging.getLogger(__name__)

# Reload the routing table at least this often even if no change was announced (a missed
# notification, a cache flush) so every process converges.
FULL_RELOAD_SECONDS = 60.0


def build_http_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        http2=True,
        limits=httpx.Limits(
            max_connections=None, max_keepalive_connections=1024, keepalive_expiry=30
        ),
        timeout=httpx.Timeout(connect=10.0, read=600.0, write=60.0, pool=30.0),
        follow_redirects=False,
    )


class Runtime:
    def __init__(self) -> None:
        self.http: httpx.AsyncClient | None = None
        self.redis: aioredis.Redis | None = None
        self.routing: RoutingTable | None = None
        self.keys: KeyResolver | None = None
        self._loaded_at = 0.0
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.http = build_http_client()
        if settings.REDIS_URL:
            self.redis = aioredis.Redis.from_url(
                settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2
            )
        self.keys = KeyResolver(self.redis)
        await self.keys.start()
        try:
            await self.reload_routing()
        except Exception:  # the database may come up later; /readyz says so meanwhile
            logger.exception("could not load the routing table at start; retrying in background")
        self._refresher = asyncio.create_task(self._refresh_forever(), name="routing-refresher")

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self.keys is not None:
            await self.keys.stop()
        if self.http is not None:
            await self.http.aclose()
        if self.redis is not None:
            await self.redis.aclose()

    async def reload_routing(self) -> None:
        version = await sync_to_async(routing_version_get, thread_sensitive=False)()
        self.routing = await run_in_db_thread(load_routing_table, version)
        self._loaded_at = time.monotonic()

    async def _refresh_forever(self) -> None:
        interval = settings.TOKENBYTE_CATALOG_REFRESH_SECONDS
        while True:
            await asyncio.sleep(interval)
            try:
                version = await sync_to_async(routing_version_get, thread_sensitive=False)()
                stale = time.monotonic() - self._loaded_at > FULL_RELOAD_SECONDS
                if self.routing is None or version != self.routing.version or stale:
                    await self.reload_routing()
            except Exception:  # keep serving the last good table
                logger.warning("routing refresh failed; keeping the current table", exc_info=True)
