"""`make run` serves, then stops everything it started within 10 s of SIGTERM."""

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from tests.conftest import REPO, free_port, subprocess_env, wait_for_http

pytestmark = pytest.mark.slow


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdlines(pids: set[int]) -> list[str]:
    lines = []
    for pid in pids:
        try:
            lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return lines


def run_and_stop(tmp_path: Path, **env: str | None) -> list[str]:
    port = free_port()
    process = subprocess.Popen(
        ["make", "run"],
        cwd=REPO,
        env=subprocess_env(
            PORT=str(port),
            DATABASE_URL=f"sqlite:///{tmp_path / 'run.sqlite3'}",
            DJANGO_SETTINGS_MODULE="tokenbyte.settings",
            **env,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=90, process=process)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["data"]
        assert len(models) >= 25
        time.sleep(2 if env.get("REDIS_URL") else 0)  # let Celery's processes come up
        started = descendants(process.pid)
        commands = cmdlines(started)
        process.send_signal(signal.SIGTERM)
        began = time.monotonic()
        process.wait(timeout=10)
        took = time.monotonic() - began
    finally:
        if process.poll() is None:
            os.killpg(os.getpgid(process.pid), signal.SIGKILL)
    assert took < 10
    deadline = time.monotonic() + 1
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in started if alive(pid)], "processes outlived make run"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    return commands


def test_make_run_serves_and_stops_cleanly(tmp_path: Path) -> None:
    commands = run_and_stop(tmp_path, REDIS_URL=None)
    assert not any("celery" in line for line in commands)


@pytest.mark.redis
def test_make_run_with_redis_starts_and_stops_celery(tmp_path: Path) -> None:
    commands = run_and_stop(tmp_path, REDIS_URL=settings.REDIS_URL)
    assert any("celery" in line and " worker" in line for line in commands)
    assert any("celery" in line and " beat" in line for line in commands)
