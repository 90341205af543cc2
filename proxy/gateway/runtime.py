"""Per-process gateway state, opened by the ASGI lifespan and closed with it."""

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.conf import settings

from billing.events import UsageEvent
from billing.reservations import RecordedBatch
from proxy.gateway.auth.key_cache import KeyResolver
from proxy.gateway.bodylog import BodyLog
from proxy.gateway.database_holds import DatabaseHolds
from proxy.gateway.db import PollingThread, run_in_db_thread
from proxy.gateway.generations import Generations
from proxy.gateway.ids import IdSource
from proxy.gateway.limits import RateLimiter
from proxy.gateway.observe import Observer, observed
from proxy.gateway.pipeline.call import Pipeline
from proxy.gateway.pipeline.metering import Metering
from proxy.gateway.pipeline.resolve import Catalog
from proxy.gateway.purse import Purse
from proxy.gateway.recorder import Recorder
from proxy.gateway.routing import RoutingTable
from proxy.gateway.stored_responses import StoredResponses
from proxy.gateway.stores import GatewayStores, Snapshot
from proxy.gateway.tracing import start_tracing
from proxy.upstream.pool import UpstreamPool
from tokenbyte.metrics import METERING_BACKLOG, RESERVATIONS_IN_FLIGHT, process_exiting
from tokenbyte.redis import GatewayRedis

if TYPE_CHECKING:  # imported only when tracing is on
    from proxy.gateway.spans import Spans

logger = logging.getLogger(__name__)

# Reload the routing table at least this often even if the version did not move, so every
# process converges whatever happened to it.
FULL_RELOAD_SECONDS = 60.0
# How often tokenbyte_metering_backlog is brought up to date.
BACKLOG_GAUGE_SECONDS = 1.0
# A request allocates a few thousand short-lived objects; the default first-generation
# threshold (700) ran the collector several times per request.
GC_THRESHOLDS = (20_000, 20, 20)


class Runtime:
    def __init__(self, stores: GatewayStores) -> None:
        # Nothing here connects yet: clients open their connections on first use, in the loop.
        # Its breaker decides for every hot-path caller when Redis is skipped.
        self.redis = GatewayRedis(settings.REDIS_URL) if settings.REDIS_URL else None
        self.stores = stores
        self.catalog = Catalog()
        self.ids = IdSource()
        self.keys = KeyResolver(self.redis, stores.keys)
        self.upstreams = UpstreamPool(self.redis)
        self.metering = Metering(self.redis)
        self.limits = RateLimiter(self.redis)
        postpaid = settings.TOKENBYTE_BILLING_MODE == "postpaid"
        self.purse = Purse(
            self.redis,
            self._money_snapshot,
            database=DatabaseHolds(
                stores.money.holds,
                postpaid=postpaid,
                hold_seconds=settings.TOKENBYTE_RESERVATION_SECONDS,
            )
            if self.redis is not None
            else None,
            postpaid=postpaid,
            hold_seconds=settings.TOKENBYTE_RESERVATION_SECONDS,
            pending_seconds=settings.TOKENBYTE_PENDING_CHARGE_SECONDS,
        )
        self.metering.before_ship = self.purse.settle_into
        self.metering.after_ship = self.purse.settled
        self.metering.on_ship_error = self.purse.on_ship_error
        # This process records and charges its own usage events in embedded mode, and while
        # Redis is away (billing's consumer does otherwise).
        self.recorder = Recorder(
            stores.money.fold,
            committed=self._recorded,
            dropped=self._not_recorded,
            write=stores.money.write,
            written=self.metering.durable,
            left=stores.money.left,
            # Celery beat deletes old records when there is Redis; embedded, the recorder does.
            prune=stores.money.prune if self.redis is None else None,
        )
        self.metering.recorder = self.recorder.add
        self.generations = Generations(stores.generations)  # GET /v1/generation's reads
        self.responses = StoredResponses(
            stores.responses, enabled=settings.TOKENBYTE_STORE_RESPONSES
        )
        # Bodies of the accounts that keep them, shipped apart from usage events (bodylog.py).
        self.bodies = BodyLog(self.redis, stores.bodies)
        self._loaded_at = 0.0
        self._refresher: asyncio.Task[None] | None = None
        self._backlog_gauge: asyncio.Task[None] | None = None
        self._version_reader = PollingThread("routing-version")
        # OpenTelemetry's exporter, when tracing is on (its thread starts with the runtime).
        self.spans: Spans | None = None
        self.observer = Observer()  # each usage event's metrics and access line, in batches

    @property
    def routing(self) -> RoutingTable | None:
        return self.catalog.table

    def pipeline(self) -> Pipeline:
        """What the model endpoints use of this runtime."""
        return Pipeline(
            keys=self.keys,
            catalog=self.catalog,
            limiter=self.limits,
            upstreams=self.upstreams,
            purse=self.purse,
            # Each usage event counted, access-logged and traced as it is handed over (observe.py).
            meter=observed(self.metering.emit, self.observer, self.spans),
            new_id=self.ids,
            bodies=self.bodies.add,
            body_limit=settings.TOKENBYTE_BODY_LOG_MAX_BYTES,
        )

    async def start(self) -> None:
        self.spans = start_tracing()  # in each worker process: the exporter's thread is its own
        await self.keys.start()
        await self.upstreams.start()
        self.metering.add_consumer(self.limits.on_usage)
        self.metering.add_consumer(self.purse.on_usage)
        self.recorder.start()
        self.metering.start()
        self.bodies.start()
        self.purse.start()
        try:
            await self.reload_routing()
        except Exception:  # the database may come up later; /readyz says so meanwhile
            logger.exception("could not load the routing table at start; retrying in background")
        self._refresher = asyncio.create_task(self._refresh_forever(), name="routing-refresher")
        self._backlog_gauge = asyncio.create_task(self._gauge_backlog_forever(), name="backlog")
        # Everything loaded so far (Django, the app, the catalog) lives as long as the process:
        # moved out of the collector's sight, full collections stop walking it (a 30-40 ms pause
        # every few seconds under load otherwise, seen as the p99 in bench/README.md).
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)

    async def stop(self) -> None:
        for task in (self._refresher, self._backlog_gauge):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.keys.stop()
        await self.metering.stop()  # delivers what is queued, to the recorder too
        self.observer.flush()
        await self.recorder.stop()
        await self.bodies.stop()
        await self.purse.stop()
        await self.upstreams.stop()
        if self.redis is not None:
            await self.redis.aclose()
        await self._version_reader.close()
        await self.generations.close()
        await self.responses.close()
        if self.spans is not None:  # after metering: the last requests' spans are queued
            await asyncio.to_thread(self.spans.shutdown)
        process_exiting()

    def _recorded(self, events: Sequence[UsageEvent], batch: RecordedBatch) -> None:
        """A batch committed: its requests' answers may end, and the purse counts its charges."""
        self.metering.durable(events)
        self.purse.on_recorded(batch)

    def _not_recorded(self, events: Sequence[UsageEvent]) -> None:
        self.metering.forget(events)
        self.purse.dropped(events)

    async def _money_snapshot(self, account_id: int, key_id: int, window: str | None) -> Snapshot:
        return await run_in_db_thread(self.stores.money.snapshot, account_id, key_id, window)

    async def routing_version(self) -> int:
        """One primary-key read, on a thread (and connection) of its own."""
        return await self._version_reader.run(self.stores.catalog.version)

    async def reload_routing(self) -> None:
        version = await self.routing_version()
        self.catalog.table = await run_in_db_thread(self.stores.catalog.load, version)
        self._loaded_at = time.monotonic()

    async def _gauge_backlog_forever(self) -> None:
        while True:
            METERING_BACKLOG.set(self.metering.backlog + self.recorder.backlog)
            RESERVATIONS_IN_FLIGHT.set(self.purse.calls_held)
            await asyncio.sleep(BACKLOG_GAUGE_SECONDS)

    async def _refresh_forever(self) -> None:
        interval = settings.TOKENBYTE_CATALOG_REFRESH_SECONDS
        while True:
            await asyncio.sleep(interval)
            try:
                version = await self.routing_version()
                stale = time.monotonic() - self._loaded_at > FULL_RELOAD_SECONDS
                table = self.catalog.table
                if table is None or version != table.version or stale:
                    await self.reload_routing()
            except Exception:  # keep serving the last good table
                logger.warning("routing refresh failed; keeping the current table", exc_info=True)
