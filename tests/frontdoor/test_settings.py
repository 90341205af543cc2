"""The front door's defaults are the README's, bad values are refused at start-up, and
`manage.py serve` runs the bounded protocol under uvicorn and the address rules under granian."""

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import httpx
import pytest

from accounts.models import User
from keys.services import key_mint
from keys.validation import KeySpec
from tests.conftest import REPO, free_port, manage_env, subprocess_env, wait_for_http
from tests.frontdoor.raw_http import RawConnection
from tokenbyte.management.commands.serve import server_command

FRONT_DOOR_ENV = (
    "TOKENBYTE_MAX_HEADER_BYTES",
    "TOKENBYTE_MAX_HEADERS",
    "TOKENBYTE_HEADER_TIMEOUT",
    "TOKENBYTE_BODY_TIMEOUT",
    "TOKENBYTE_KEEP_ALIVE_TIMEOUT",
    "TOKENBYTE_MAX_CONCURRENCY",
    "FORWARDED_ALLOW_IPS",
)
PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.core.checks import run_checks
names = %r
print(json.dumps({
    "values": {name: getattr(settings, name) for name in names},
    "messages": sorted(m.id for m in run_checks() if m.id.startswith("tokenbyte.")),
}))
"""


def probe(**env: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE % (FRONT_DOOR_ENV,)],
        cwd=REPO,
        env=subprocess_env(
            **{
                **dict.fromkeys(FRONT_DOOR_ENV),
                "DJANGO_SETTINGS_MODULE": "tokenbyte.settings",
                "DEBUG": "on",
                **env,
            }
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_the_defaults_are_the_documented_ones() -> None:
    assert probe()["values"] == {
        "TOKENBYTE_MAX_HEADER_BYTES": 64 * 1024,
        "TOKENBYTE_MAX_HEADERS": 100,
        "TOKENBYTE_HEADER_TIMEOUT": 10.0,
        "TOKENBYTE_BODY_TIMEOUT": 60.0,
        "TOKENBYTE_KEEP_ALIVE_TIMEOUT": 5.0,
        # Above the 1,000 concurrent slow requests of bench/run.sh's json:1000:200.
        "TOKENBYTE_MAX_CONCURRENCY": 2048,
        "FORWARDED_ALLOW_IPS": [],  # nobody, not even loopback
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FORWARDED_ALLOW_IPS": "10.0.0.5,proxy.internal"}, "tokenbyte.E007"),
        # Forms uvicorn's middleware would take for names, never matching an address:
        ({"FORWARDED_ALLOW_IPS": "[::1]"}, "tokenbyte.E007"),
        ({"FORWARDED_ALLOW_IPS": "10.1.2.3/16"}, "tokenbyte.E007"),
        ({"FORWARDED_ALLOW_IPS": "*,10.0.0.5"}, "tokenbyte.E007"),
        ({"FORWARDED_ALLOW_IPS": "*"}, "tokenbyte.W001"),
        ({"TOKENBYTE_BODY_TIMEOUT": "0"}, "tokenbyte.E008"),
        ({"TOKENBYTE_MAX_CONCURRENCY": "-1"}, "tokenbyte.E008"),
    ],
)
def test_unsafe_front_door_settings_are_reported(env: dict[str, str], message: str) -> None:
    assert message in probe(**env)["messages"]


def test_forwarders_as_addresses_and_networks_pass_the_checks() -> None:
    reported = probe(FORWARDED_ALLOW_IPS="127.0.0.1,10.1.0.0/16,::1,fd00::/8")
    assert reported["values"]["FORWARDED_ALLOW_IPS"] == [
        "127.0.0.1",
        "10.1.0.0/16",
        "::1",
        "fd00::/8",
    ]
    assert reported["messages"] == []


def test_serve_gives_uvicorn_the_bounded_protocol_and_no_trust_in_forwarded_headers() -> None:
    command = server_command("uvicorn", "127.0.0.1", 8000, 1)
    assert command[command.index("--http") + 1] == "tokenbyte.front_door:BoundedHttpToolsProtocol"
    assert "--no-proxy-headers" in command
    assert "--limit-concurrency" not in command  # ours answers 503 with Retry-After
    granian = server_command("granian", "127.0.0.1", 8000, 1)
    assert granian[granian.index("--http1-header-read-timeout") + 1] == "10000"
    assert granian[granian.index("--http1-buffer-size") + 1] == str(64 * 1024)


@contextlib.contextmanager
def serving(*arguments: str, **env: str) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--no-celery", "--port", str(port), *arguments],
        cwd=REPO,
        env=manage_env(REDIS_URL=None, **env),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/healthz", timeout=60, process=process)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)


@pytest.mark.slow
def test_manage_py_serve_refuses_what_the_bounds_refuse(transactional_db: None) -> None:
    with serving(TOKENBYTE_MAX_HEADERS="10", TOKENBYTE_KEEP_ALIVE_TIMEOUT="1") as url:
        with RawConnection(url) as client:
            client.send(
                b"GET /v1/models HTTP/1.1\r\nHost: x\r\n"
                + b"".join(b"X-%d: v\r\n" % n for n in range(10))
                + b"\r\n"
            )
            response = client.read_response()
            assert response.status == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
            assert response.json()["error"]["code"] == "headers_too_large"
        with RawConnection(url) as idle:
            assert idle.closed_by_server()


@pytest.mark.slow
def test_granian_believes_forwarded_for_from_a_listed_forwarder_only(
    transactional_db: None,
) -> None:
    owner = User.objects.create_user("granian@example.com")
    office = key_mint(owner=owner, spec=KeySpec(name="o", allowed_networks=("10.0.0.0/8",)))
    auth = {"Authorization": f"Bearer {office.secret}", "X-Forwarded-For": "10.1.2.3"}
    with serving("--server", "granian") as url:
        assert httpx.get(f"{url}/v1/models", headers=auth).status_code == HTTPStatus.FORBIDDEN
    with serving("--server", "granian", FORWARDED_ALLOW_IPS="127.0.0.1") as url:
        assert httpx.get(f"{url}/v1/models", headers=auth).status_code == HTTPStatus.OK
