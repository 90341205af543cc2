"""A fresh copy of this checkout, to run `make run` and the CLI in as a new user does.

The copy holds the tracked and untracked-but-not-ignored files (so this work tree's changes),
and none of the ignored ones: no `.secret_key`, no `db.sqlite3`, no `staticfiles/`. It shares
this checkout's `.venv` through a symlink; commands run there import the copy's code (a script's
own directory comes before the editable install's finder).
"""

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import REPO, wait_for_http


def fresh_checkout(dest: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():  # not deleted in the work tree
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)  # mtimes kept: make sees the venv as up to date
    (dest / ".venv").symlink_to(REPO / ".venv")
    return dest


def bare_environment(**extra: str) -> dict[str, str]:
    """A terminal with nothing set: no SECRET_KEY, DEBUG, DATABASE_URL, REDIS_URL, PORT."""
    return {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **extra}


@contextmanager
def make_run(checkout: Path, port: int, log: Path) -> Iterator[str]:
    """`make run` in `checkout` with no environment but PORT; yields the base URL once ready.

    `-o .venv/.installed-run`: the shared venv is never reinstalled from the copy.
    """
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["make", "-o", ".venv/.installed-run", "run"],
            cwd=checkout,
            env=bare_environment(PORT=str(port), HOME=str(checkout)),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_http(f"{url}/readyz", timeout=120, process=process)
            yield url
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def second_terminal(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`.venv/bin/python manage.py ARGS` in `checkout`, exactly as the README shows it."""
    return subprocess.run(
        [".venv/bin/python", "manage.py", *args],
        cwd=checkout,
        env=bare_environment(HOME=str(checkout)),
        capture_output=True,
        text=True,
        timeout=120,
    )
