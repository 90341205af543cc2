"""Liveness and readiness probes."""

import asyncio

from django.db import connection

from proxy.db import run_in_db_thread
from proxy.http import Request, Response
from proxy.runtime import Runtime

PROBE_TIMEOUT_SECONDS = 3.0


async def healthz(request: Request, runtime: Runtime) -> Response:
    return Response.json({"status": "ok"})


def _database_ping() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def _check(coro: object) -> str:
    try:
        await asyncio.wait_for(coro, PROBE_TIMEOUT_SECONDS)  # type: ignore[arg-type]
    except TimeoutError:
        return f"unreachable: no answer within {PROBE_TIMEOUT_SECONDS:g} s"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return "ok"


async def readyz(request: Request, runtime: Runtime) -> Response:
    checks = {"database": await _check(run_in_db_thread(_database_ping))}
    if runtime.redis is not None:
        checks["redis"] = await _check(runtime.redis.ping())
    routing = runtime.routing
    checks["catalog"] = (
        f"ok ({len(routing.cards)} models)" if routing is not None else "not loaded yet"
    )
    ready = all(value.startswith("ok") for value in checks.values())
    return Response.json(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )
