"""System checks that refuse configurations which would be unsafe or silently wrong."""

import ipaddress
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register


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
        from proxy.catalog.crypto import InvalidEncryptionKey, parse_fernet_keys

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


@register(Tags.security)
def check_front_door(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[CheckMessage]:
    """The front door's bounds are bounds, and a trusted forwarder is an address."""
    messages: list[CheckMessage] = []
    forwarders = settings.FORWARDED_ALLOW_IPS
    if forwarders == ["*"]:
        messages.append(
            Warning(
                "FORWARDED_ALLOW_IPS is '*': any client can choose its address with "
                "X-Forwarded-For, past a key's allowed IP ranges and the sign-in rate limits.",
                hint="List the reverse proxy's addresses instead.",
                id="tokenbyte.W001",
            )
        )
        forwarders = []
    for entry in forwarders:
        # As uvicorn's ProxyHeadersMiddleware reads them; anything else would never match.
        try:
            if "/" in entry:
                ipaddress.ip_network(entry)
            else:
                ipaddress.ip_address(entry)
        except ValueError:
            messages.append(
                Error(
                    f"FORWARDED_ALLOW_IPS has {entry!r}, which is not an IP address or network.",
                    hint="Comma-separated addresses or networks, e.g. 10.0.0.5,10.1.0.0/16 "
                    "('*' alone trusts everyone).",
                    id="tokenbyte.E007",
                )
            )
    bounds = {
        name: getattr(settings, name)
        for name in (
            "TOKENBYTE_MAX_HEADER_BYTES",
            "TOKENBYTE_MAX_HEADERS",
            "TOKENBYTE_HEADER_TIMEOUT",
            "TOKENBYTE_BODY_TIMEOUT",
            "TOKENBYTE_KEEP_ALIVE_TIMEOUT",
            "TOKENBYTE_MAX_CONCURRENCY",
        )
    }
    messages.extend(
        Error(
            f"{name} is {value}; it must be above zero.",
            hint="Unset it for the default (README, Configuration).",
            id="tokenbyte.E008",
        )
        for name, value in bounds.items()
        if value <= 0
    )
    return messages
