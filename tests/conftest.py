"""Shared fixtures: live servers on loopback, the catalog, subprocess helpers."""

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import httpx
import pytest
import uvicorn
from django.conf import settings

from proxy.gateway.routing import RoutingTable
from proxy.gateway.runtime import Runtime

REPO = Path(__file__).resolve().parent.parent


def _uses_postgres() -> bool:
    return bool(settings.DATABASES["default"]["ENGINE"].endswith("postgresql"))


def missing_part(reason: str) -> NoReturn:
    """Skip for a part this machine lacks (a service, a browser, an SDK); under .ci/run
    (TOKENBYTE_REQUIRE_SERVICES=1), which installs and starts them all, fail instead."""
    if os.environ.get("TOKENBYTE_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    missing = []
    if item.get_closest_marker("redis") and not settings.REDIS_URL:
        missing.append("REDIS_URL=redis://…")
    if item.get_closest_marker("postgres") and not _uses_postgres():
        missing.append("DATABASE_URL=postgres://…")
    if missing:
        missing_part(f"needs {' and '.join(missing)} (CI sets both)")


@pytest.fixture(scope="session", autouse=True)
def _fresh_rate_limits() -> None:
    """Key ids restart with each test database; their rate-limit buckets in Redis must too."""
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        # Reservations, balance mirrors and usage events too: account ids restart as well.
        stale = [
            *client.scan_iter("tb:rl:*"),
            *client.scan_iter("tb:m:*"),
            *client.scan_iter("tb:usage*"),
        ]
        if stale:
            client.delete(*stale)
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(
    url: str, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode} before {url} answered")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


class LiveServer:
    """The full ASGI application (gateway + Django) under uvicorn in a thread of this process,
    with the protocol and bounds `manage.py serve` gives it (tokenbyte.front_door)."""

    def __init__(self) -> None:
        from tokenbyte.asgi import build_application
        from tokenbyte.front_door import uvicorn_options

        self.app = build_application()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", **uvicorn_options()
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="live-gateway", daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("the live server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    @property
    def runtime(self) -> Runtime | None:
        return self.app.gateway.runtime

    def wait_for_routing(
        self, predicate: Callable[[RoutingTable], bool], timeout: float = 5.0
    ) -> None:
        """Wait until the gateway's routing table satisfies `predicate` (it refreshes itself)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            routing = self.runtime.routing if self.runtime else None
            if routing is not None and predicate(routing):
                return
            time.sleep(0.05)
        raise AssertionError("the gateway's routing table did not converge")


@pytest.fixture
def catalog(transactional_db: None) -> None:
    from proxy.services import catalog_sync

    catalog_sync()


@pytest.fixture
def live_gateway(transactional_db: None, catalog: None) -> Iterator[LiveServer]:
    with LiveServer() as server:
        yield server


@pytest.fixture
def api(live_gateway: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_gateway.url, timeout=10) as client:
        yield client


def subprocess_env(**overrides: str | None) -> dict[str, str]:
    """This process's environment with overrides; None removes a variable."""
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "tokenbyte.settings")
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def database_url() -> str:
    """The URL of the database this test runs on (the test database), for subprocesses."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def manage_env(**overrides: str | None) -> dict[str, str]:
    """Environment for a manage.py subprocess working on this test's database."""
    return subprocess_env(DEBUG="on", DATABASE_URL=database_url(), **overrides)


def manage(
    *args: str, env: dict[str, str] | None = None, check: bool = False
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args],
        cwd=REPO,
        env=env or subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )
