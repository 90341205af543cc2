"""Liveness and readiness probes."""

import asyncio
import logging

from django.db import connection

from proxy.gateway.db import run_in_db_thread
from proxy.gateway.http import Request, Response
from proxy.gateway.runtime import Runtime

logger = logging.getLogger(__name__)
PROBE_TIMEOUT_SECONDS = 3.0


async def healthz(request: Request) -> Response:
    return Response.json({"status": "ok"})


def _database_ping() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def _check(name: str, coro: object) -> str:
    """ "ok", or which way the check failed; the exception's text (hosts, ports, users) goes to
    the log only, as /readyz answers anyone."""
    try:
        await asyncio.wait_for(coro, PROBE_TIMEOUT_SECONDS)  # type: ignore[arg-type]
    except TimeoutError:
        logger.warning("readiness: %s gave no answer within %g s", name, PROBE_TIMEOUT_SECONDS)
        return f"unreachable: no answer within {PROBE_TIMEOUT_SECONDS:g} s"
    except Exception as exc:
        logger.warning("readiness: %s is unreachable: %s: %s", name, type(exc).__name__, exc)
        return "unreachable"
    return "ok"


async def readyz(request: Request, runtime: Runtime) -> Response:
    checks = {"database": await _check("the database", run_in_db_thread(_database_ping))}
    if runtime.redis is not None:
        checks["redis"] = await _check("Redis", runtime.redis.ping())
    routing = runtime.catalog.table
    checks["catalog"] = (
        f"ok ({len(routing.cards)} models)" if routing is not None else "not loaded yet"
    )
    ready = all(value.startswith("ok") for value in checks.values())
    body: dict[str, object] = {"status": "ready" if ready else "unavailable", "checks": checks}
    if runtime.redis is not None:
        # Whether requests call Redis now or take their fallbacks (not a readiness condition:
        # the gateway serves either way).
        body["redis_breaker"] = runtime.redis.breaker.state.name.lower().replace("_", "-")
    return Response.json(body, status=200 if ready else 503)
