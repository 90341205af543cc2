# Clients from addresses of their own, so allauth's per-IP rate limits never carry over.
from tests.accounts.conftest import client  # noqa: F401
