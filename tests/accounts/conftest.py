"""Account fixtures: users with a verified email, clients from their own IP, mail codes."""

import base64
import hashlib
import hmac
import itertools
import json
import re
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client

from accounts.models import User
from tests.conftest import REPO, subprocess_env

PASSWORD = "correct-horse-battery-staple-42"
_addresses = itertools.count(1)


@pytest.fixture
def client() -> Client:
    """A test client from an address of its own (TEST-NET-3), so allauth's per-IP rate limits,
    which stay in Redis between tests and runs, never carry over from another test."""
    n = next(_addresses) + uuid.uuid4().int % 60000
    return Client(REMOTE_ADDR=f"203.0.{n // 250 % 250}.{n % 250 + 1}")


@pytest.fixture
def unique_email() -> Callable[[], str]:
    return lambda: f"user-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture
def make_user(db: None, unique_email: Callable[[], str]) -> Callable[..., User]:
    def make(
        email: str | None = None,
        *,
        password: str | None = PASSWORD,
        verified: bool = True,
        **extra: object,
    ) -> User:
        user = User.objects.create_user(email or unique_email(), password, **extra)
        EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=verified)
        return user

    return make


def mail_code(to: str) -> str:
    """The verification code in the last mail sent to `to`."""
    message = next(m for m in reversed(mail.outbox) if to in m.to)
    body = str(message.body)
    lines = [line.strip() for line in body.splitlines()]
    codes = [line for line in lines if re.fullmatch(r"[A-Z0-9]{4,12}(-[A-Z0-9]{3,6})*", line)]
    assert codes, f"no code in the mail to {to}: {body!r}"
    return codes[-1]


def mail_link(to: str, path_prefix: str) -> str:
    """The path of the first link under `path_prefix` in the last mail sent to `to`."""
    message = next(m for m in reversed(mail.outbox) if to in m.to)
    match = re.search(rf"https?://[^/\s]+({re.escape(path_prefix)}\S+)", str(message.body))
    assert match, f"no {path_prefix} link in the mail to {to}"
    return match.group(1)


def totp(secret: str, at: float, period: int = 30, digits: int = 6) -> str:
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(at // period)), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def fresh_totp(secret: str) -> str:
    """A code that stays valid for at least two seconds (allauth allows no clock drift)."""
    if 30 - time.time() % 30 < 2:
        time.sleep(2.1)
    return totp(secret, time.time())


def settings_probe(expression: str, **env: str) -> Any:
    """`expression` (JSON-able) evaluated after a fresh import of the real settings."""
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({expression}))"
    )
    names = ("GITHUB", "DISCORD")
    clean: dict[str, str | None] = {
        f"{n}_CLIENT_{p}": None for n in names for p in ("ID", "SECRET")
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=subprocess_env(
            **{**clean, "DEBUG": "on", "DJANGO_SETTINGS_MODULE": "tokenbyte.settings", **env}
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
