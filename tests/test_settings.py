"""Settings are read once at import: each case imports them in a fresh interpreter."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.checkout import fresh_checkout
from tests.conftest import REPO, manage, subprocess_env

PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.core.checks import run_checks
print(json.dumps({
    "cache": settings.CACHES["default"]["BACKEND"],
    "cache_location": settings.CACHES["default"].get("LOCATION"),
    "broker": settings.CELERY_BROKER_URL,
    "eager": settings.CELERY_TASK_ALWAYS_EAGER,
    "db_engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": str(settings.DATABASES["default"]["NAME"]),
    "debug": settings.DEBUG,
    "allowed_hosts": settings.ALLOWED_HOSTS,
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "csrf_cookie_secure": settings.CSRF_COOKIE_SECURE,
    "hsts": settings.SECURE_HSTS_SECONDS,
    "x_frame": settings.X_FRAME_OPTIONS,
    "max_body": settings.TOKENBYTE_MAX_BODY_BYTES,
    "errors": sorted(m.id for m in run_checks() if m.is_serious()),
}))
"""
GOOD_SECRET = "s3cr3t-" + "abcdefghij" * 6

BASE = {
    "DJANGO_SETTINGS_MODULE": "tokenbyte.settings",
    "REDIS_URL": None,
    "DATABASE_URL": None,
    "DEBUG": None,
    "SECRET_KEY": None,
    "ALLOWED_HOSTS": None,
    "HOST": None,
    "WEB_CONCURRENCY": None,
    "TOKENBYTE_ENCRYPTION_KEY": None,
}


def probe(**env: str | None) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env=subprocess_env(**{**BASE, **env}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def test_embedded_defaults_use_sqlite_locmem_and_in_process_tasks() -> None:
    config = probe(DEBUG="on")
    assert config["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert config["eager"] is True
    assert config["db_engine"] == "django.db.backends.sqlite3"
    assert config["db_name"] == str(REPO / "db.sqlite3")
    assert config["allowed_hosts"] == ["localhost", "127.0.0.1", "[::1]"]
    assert config["max_body"] == 20 * 1024 * 1024
    assert config["errors"] == []


def test_redis_url_selects_redis_cache_and_celery_broker() -> None:
    config = probe(
        DEBUG="on",
        REDIS_URL="redis://127.0.0.1:6379/3",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/test",
    )
    assert config["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert config["cache_location"] == "redis://127.0.0.1:6379/3"
    assert config["broker"] == "redis://127.0.0.1:6379/3"
    assert config["eager"] is False
    assert config["db_engine"] == "django.db.backends.postgresql"
    assert config["db_name"] == "test"


def test_debug_off_turns_on_production_security() -> None:
    config = probe(SECRET_KEY=GOOD_SECRET, TOKENBYTE_MAX_BODY_BYTES="1024")
    assert config["debug"] is False
    assert config["session_cookie_secure"] is True
    assert config["csrf_cookie_secure"] is True
    assert config["hsts"] == 31_536_000
    assert config["x_frame"] == "DENY"
    assert config["max_body"] == 1024
    assert config["errors"] == []


def test_debug_off_without_secret_key_refuses_to_start(tmp_path: Path) -> None:
    # A checkout where `make run` never ran: no .secret_key to fall back on.
    checkout = fresh_checkout(tmp_path / "checkout")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=checkout,
        env=subprocess_env(**BASE),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr
    assert "make run" in result.stderr


def test_without_secret_key_manage_py_takes_make_runs_secret_and_debug(tmp_path: Path) -> None:
    checkout = fresh_checkout(tmp_path / "checkout")
    (checkout / ".secret_key").write_text(GOOD_SECRET + "\n")  # as the Makefile writes it
    probe_script = "import django; django.setup(); from django.conf import settings; " + (
        f"print(settings.DEBUG, settings.SECRET_KEY == {GOOD_SECRET!r})"
    )

    def settings_in_checkout(**env: str | None) -> str:
        result = subprocess.run(
            [sys.executable, "-c", probe_script],
            cwd=checkout,
            env=subprocess_env(**{**BASE, **env}),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert settings_in_checkout() == "True True"  # make run's defaults: its secret, DEBUG on
    assert settings_in_checkout(DEBUG="off") == "False True"
    # A deployment's own secret keeps DEBUG off by default, and the file is not read.
    assert settings_in_checkout(SECRET_KEY="s3cr3t-" + "z" * 60) == "False False"


@pytest.mark.parametrize(
    ("env", "error"),
    [
        (
            {"SECRET_KEY": "django-insecure-tokenbyte-development-only-never-use-in-production"},
            "tokenbyte.E001",
        ),
        ({"SECRET_KEY": "short"}, "tokenbyte.E002"),
        ({"SECRET_KEY": GOOD_SECRET, "ALLOWED_HOSTS": "*"}, "tokenbyte.E003"),
        ({"DEBUG": "on", "HOST": "0.0.0.0"}, "tokenbyte.E004"),  # noqa: S104  # the point of the test
        ({"DEBUG": "on", "WEB_CONCURRENCY": "2"}, "tokenbyte.E005"),
        ({"DEBUG": "on", "TOKENBYTE_ENCRYPTION_KEY": "not-a-fernet-key"}, "tokenbyte.E006"),
    ],
)
def test_dangerous_combinations_are_refused(env: dict[str, str], error: str) -> None:
    errors = probe(**env)["errors"]
    assert isinstance(errors, list)
    assert error in errors
    result = manage("check", env=subprocess_env(**{**BASE, **env}))
    assert result.returncode != 0
    assert error in result.stderr


def test_migrations_match_the_models() -> None:
    result = manage(
        "makemigrations", "--check", "--dry-run", env=subprocess_env(**{**BASE, "DEBUG": "on"})
    )
    assert result.returncode == 0, result.stdout + result.stderr
