import subprocess
import sys

import httpx
import pytest

from tests.conftest import REPO, free_port, subprocess_env, wait_for_http

pytestmark = pytest.mark.slow


def test_healthz_and_readyz_answer_when_all_is_up(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["catalog"].startswith("ok (")


@pytest.mark.redis
def test_readyz_checks_redis_when_configured(api: httpx.Client) -> None:
    ready = api.get("/readyz").json()
    assert ready["checks"]["redis"] == "ok"
    assert ready["redis_breaker"] == "closed"


def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    port = free_port()
    dead_port = free_port()  # nothing listens there
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tokenbyte.asgi:application",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=subprocess_env(
            DEBUG="on",
            DATABASE_URL=f"postgres://postgres@127.0.0.1:{dead_port}/nothing",
            REDIS_URL=None,
        ),
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process=server)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "unavailable"
        # Which check failed, never the exception's text (its host, port or user).
        assert body["checks"]["database"] == "unreachable"
        assert str(dead_port) not in ready.text
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models")
        assert models.status_code == 503
        assert models.json()["error"]["code"] == "service_unavailable"
    finally:
        server.terminate()
        server.wait(10)
