"""Serve console + API, plus the Celery worker and beat when REDIS_URL is set (`make run`).

A small supervisor: each child runs in its own process group; SIGINT, SIGTERM, the death of
our parent (make) or the exit of any child stops all of them, forcefully after a grace period,
so everything is gone within 10 seconds.

Each run gets a fresh PROMETHEUS_MULTIPROC_DIR, made before any child starts (prometheus_client
reads it when first imported) and removed once they are all gone: the web workers and Celery
write their metrics there, and /metrics, answered by any worker, sums them (tokenbyte/metrics.py).
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from tokenbyte import front_door
from tokenbyte.cli import OperatorCommand
from tokenbyte.metrics import MULTIPROC_DIR_VARIABLE

GRACE_SECONDS = 7.0
POLL_SECONDS = 0.2


def server_command(server: str, host: str, port: int, workers: int) -> list[str]:
    """The server's argv; its protocol and bounds come from tokenbyte.front_door."""
    app = "tokenbyte.asgi:application"
    if server == "uvicorn":
        return [
            *(sys.executable, "-m", "uvicorn", app, "--host", host, "--port", str(port)),
            *("--workers", str(workers), *front_door.uvicorn_arguments()),
            *("--no-access-log", "--timeout-graceful-shutdown", "5", "--backlog", "4096"),
        ]
    return [
        *(sys.executable, "-m", "granian", "--interface", "asgi", app),
        *("--host", host, "--port", str(port), "--workers", str(workers)),
        *("--loop", "uvloop", "--no-ws", "--backlog", "4096", *front_door.granian_arguments()),
        *("--workers-kill-timeout", "5", "--log-level", "warning"),
    ]


class Command(OperatorCommand):
    help = "Run the web server (and Celery worker + beat when REDIS_URL is set) in the foreground."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.SERVER_HOST)
        parser.add_argument("--port", type=int, default=settings.SERVER_PORT)
        parser.add_argument("--workers", type=int, default=settings.WEB_CONCURRENCY)
        parser.add_argument(
            "--server",
            choices=("granian", "uvicorn"),
            default=os.environ.get("TOKENBYTE_SERVER", "uvicorn"),
            help="ASGI server (bench/README.md has the measurements behind the default)",
        )
        parser.add_argument("--no-celery", action="store_true", help="web server only")

    def handle(self, *args: Any, **options: Any) -> None:
        commands = {
            "web": server_command(
                options["server"], options["host"], options["port"], options["workers"]
            )
        }
        if settings.REDIS_URL and not options["no_celery"]:
            state = Path(tempfile.mkdtemp(prefix="tokenbyte-beat-"))
            celery = [sys.executable, "-m", "celery", "-A", "tokenbyte"]
            commands["worker"] = [*celery, "worker", "--loglevel", "INFO", "--concurrency", "2"]
            commands["beat"] = [
                *celery,
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(state / "celerybeat-schedule"),
            ]
        url = f"http://{options['host']}:{options['port']}"
        self.stdout.write(f"TokenByte on {url}  (console {url}/, API {url}/v1)")
        metrics_dir = tempfile.mkdtemp(prefix="tokenbyte-metrics-")
        env = {**os.environ, MULTIPROC_DIR_VARIABLE: metrics_dir}
        try:
            exit_code = self._supervise(commands, env)
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        sys.exit(exit_code)

    def _supervise(self, commands: dict[str, list[str]], env: dict[str, str]) -> int:
        stopping = False

        def request_stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        parent = os.getppid()
        children = {
            name: subprocess.Popen(command, env=env, start_new_session=True)  # noqa: S603  # our argv
            for name, command in commands.items()
        }
        exit_code = 0
        while not stopping:
            for name, child in children.items():
                code = child.poll()
                if code is not None:
                    self.stderr.write(f"{name} exited with {code}; stopping everything")
                    exit_code = code or 1
                    stopping = True
            if os.getppid() != parent:  # make (or the shell) is gone: do not linger
                stopping = True
            time.sleep(POLL_SECONDS)
        self._stop(children)
        return exit_code

    def _stop(self, children: dict[str, subprocess.Popen[bytes]]) -> None:
        for child in children.values():
            self._signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for child in children.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            # Kill the group even when the leader is gone: prefork pool children may remain.
            self._signal_group(child, signal.SIGKILL)
            child.wait()

    @staticmethod
    def _signal_group(child: subprocess.Popen[bytes], signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)
