"""A key's secret is shown once and lands nowhere else: not in the database, logs or Redis."""

import io
import logging
from http import HTTPStatus

import httpx
import pytest
import redis
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import User
from keys.models import ApiKey
from tests.conftest import LiveServer

pytestmark = pytest.mark.slow


def test_a_secret_reaches_neither_the_database_nor_the_logs_nor_redis(
    live_gateway: LiveServer,
    api: httpx.Client,
    client: Client,
    owner: User,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client.force_login(owner)
    with CaptureQueriesContext(connection) as queries:
        response = client.post(reverse("keys:new"), {"name": "hygiene", "budget_period": "monthly"})
    secret = response.context["secret"]
    assert secret in response.content.decode()  # the reveal, once
    key = ApiKey.objects.get()
    assert key.prefix in secret
    assert all(secret not in query["sql"] for query in queries.captured_queries)

    headers = {"Authorization": f"Bearer {secret}"}
    assert api.get("/v1/models", headers=headers).status_code == HTTPStatus.OK
    client.post(reverse("keys:revoke", args=[key.pk]))
    refused = api.get("/v1/models", headers=headers)
    assert refused.status_code == HTTPStatus.UNAUTHORIZED
    assert secret not in refused.text

    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    assert key.secret_hash in dump.getvalue()  # the dump is real
    assert secret not in dump.getvalue()
    for session in Session.objects.all():
        assert secret not in str(session.get_decoded())
    assert secret not in caplog.text
    assert secret[len("tb-") :] not in caplog.text
    if settings.REDIS_URL:
        store = redis.Redis.from_url(settings.REDIS_URL)
        values = [store.get(name) or b"" for name in store.scan_iter("tb:keys:*")]
        assert values  # the key's entry is there
        assert all(secret.encode() not in value for value in values)
        store.close()
