"""Encryption at rest for upstream provider credentials (Fernet).

Keys come from TOKENBYTE_ENCRYPTION_KEY (comma-separated: the first encrypts, all decrypt, so
keys can be rotated) or, when it is unset, are derived from SECRET_KEY and SECRET_KEY_FALLBACKS
with HKDF, so rotating Django's secret the documented way keeps old credentials readable.
"""

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class InvalidEncryptionKey(ValueError):
    pass


class CredentialDecryptionError(RuntimeError):
    """The stored credential was encrypted with a key this server does not have."""


def parse_fernet_keys(value: str) -> list[Fernet]:
    keys = [part.strip() for part in value.split(",") if part.strip()]
    if not keys:
        raise InvalidEncryptionKey("no key given")
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError) as exc:
            raise InvalidEncryptionKey(
                f"key #{position} is not URL-safe base64 of 32 bytes"
            ) from exc
    return fernets


def derive_fernet_key(secret: str) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"tokenbyte",
        info=b"tokenbyte upstream credentials v1",
    )
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode()))


@functools.lru_cache(maxsize=8)
def _multifernet(explicit_keys: str, secrets: tuple[str, ...]) -> MultiFernet:
    if explicit_keys:
        return MultiFernet(parse_fernet_keys(explicit_keys))
    return MultiFernet([Fernet(derive_fernet_key(secret)) for secret in secrets])


def _current() -> MultiFernet:
    secrets = (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ()))
    return _multifernet(settings.TOKENBYTE_ENCRYPTION_KEY, secrets)


def encrypt_secret(raw: str) -> str:
    return _current().encrypt(raw.encode()).decode()


def decrypt_secret(token: str) -> str:
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise CredentialDecryptionError(
            "cannot decrypt an upstream credential: TOKENBYTE_ENCRYPTION_KEY or SECRET_KEY "
            "changed since it was stored"
        ) from exc
