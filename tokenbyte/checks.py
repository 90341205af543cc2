"""System checks that refuse configurations which would be unsafe or silently wrong."""

import ipaddress
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import Error, Tags, register


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@register(Tags.security)
def check_dangerous_settings(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[Error]:
    from tokenbyte.settings import INSECURE_DEV_SECRET_KEY

    errors: list[Error] = []
    secret = settings.SECRET_KEY
    if not settings.DEBUG:
        if secret == INSECURE_DEV_SECRET_KEY or secret.startswith("django-insecure"):
            errors.append(
                Error(
                    "DEBUG is off but SECRET_KEY is the development default.",
                    hint="Set SECRET_KEY to a long random value (`make run` generates one).",
                    id="tokenbyte.E001",
                )
            )
        elif len(secret) < 50 or len(set(secret)) < 5:
            errors.append(
                Error(
                    "DEBUG is off but SECRET_KEY is too short or too simple.",
                    hint="Use at least 50 random characters.",
                    id="tokenbyte.E002",
                )
            )
        if "*" in settings.ALLOWED_HOSTS:
            errors.append(
                Error(
                    "DEBUG is off and ALLOWED_HOSTS contains '*' (Host header poisoning).",
                    hint="List the host names this server answers to.",
                    id="tokenbyte.E003",
                )
            )
    elif not _is_loopback(settings.SERVER_HOST):
        errors.append(
            Error(
                f"DEBUG is on while the server binds {settings.SERVER_HOST}: "
                "tracebacks and settings would be shown to the network.",
                hint="Turn DEBUG off, or bind HOST to 127.0.0.1.",
                id="tokenbyte.E004",
            )
        )
    if settings.WEB_CONCURRENCY > 1 and not settings.REDIS_URL:
        errors.append(
            Error(
                "WEB_CONCURRENCY > 1 needs REDIS_URL: without it every process would keep its "
                "own rate limits and caches.",
                hint="Set REDIS_URL, or run one process.",
                id="tokenbyte.E005",
            )
        )
    if settings.TOKENBYTE_ENCRYPTION_KEY:
        from proxy.crypto import InvalidEncryptionKey, parse_fernet_keys

        try:
            parse_fernet_keys(settings.TOKENBYTE_ENCRYPTION_KEY)
        except InvalidEncryptionKey as exc:
            errors.append(
                Error(
                    f"TOKENBYTE_ENCRYPTION_KEY is invalid: {exc}",
                    hint="Generate one with `python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'`.",
                    id="tokenbyte.E006",
                )
            )
    return errors
