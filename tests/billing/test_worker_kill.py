"""A Celery worker SIGKILLed mid-batch, then started again: every usage event is recorded and
charged exactly once, and the stream is left empty with nothing pending.

Real PostgreSQL, Redis and worker processes. The kill lands at a chosen point of a batch, not
at a guessed moment: the test holds a lock on one account's balance row, so the worker's
transaction for that account's batch waits inside the database until the test lets it go; the
worker's Redis connection runs through a relay the test can stop forwarding, so a committed
batch can be held back from its XACK."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from django.conf import settings
from django.db import connection

from accounts.models import User
from billing import tasks
from billing.events import UsageEvent
from billing.models import Balance, EntryKind, LedgerEntry, UsageRecord
from billing.money import charge_for
from billing.reservations import account_keys, to_nanos
from billing.selectors import balance_get, ledger_sum
from billing.services import ledger_credit
from tests.billing.rollup_checks import rollups_in_db, rollups_of_records
from tests.billing.test_usage_drain import ship
from tests.billing.test_usage_records import event
from tests.conftest import REPO, manage_env
from tokenbyte.redis import USAGE_GROUP, USAGE_STREAM

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

WAIT_SECONDS = 60  # for a worker to start, reach the lock, or finish: any is seconds


class Relay:
    """A loopback port relayed to Redis. swallow() stops forwarding what clients send (it is
    dropped, never delivered late), so their commands hang as if Redis had stopped answering."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.swallowing = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="redis-relay", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, outbound: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if outbound and self.swallowing.is_set():
                    continue
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def swallow(self) -> None:
        self.swallowing.set()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


class Worker:
    """`celery worker` as deployed (solo pool here, so the drain runs in the process we kill)."""

    def __init__(self, redis_url: str, log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "celery", "-A", "tokenbyte", "worker"),
                    *("--pool", "solo", "--without-heartbeat", "--without-gossip"),
                    *("--without-mingle", "--loglevel", "WARNING"),
                ],
                cwd=REPO,
                env=manage_env(REDIS_URL=redis_url),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)  # no shutdown: mid-statement, mid-call
        self.process.wait(30)

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_until(check: Callable[[], bool], what: str, worker: Worker) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        assert worker.alive(), f"the worker exited before {what}:\n{worker.output()}"
        assert time.monotonic() < deadline, f"no {what} within {WAIT_SECONDS} s:\n{worker.output()}"
        time.sleep(0.05)


@contextlib.contextmanager
def balance_locked(account: User) -> Iterator[None]:
    """The account's balance row locked (FOR UPDATE) by another session until the block ends:
    a batch that charges the account waits for it inside its transaction."""
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"],
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
    ) as locker:
        locker.execute(
            f"SELECT 1 FROM {Balance._meta.db_table} WHERE account_id = %s FOR UPDATE",  # noqa: S608
            [account.pk],
        )
        yield
        locker.rollback()


def waiting_on_a_lock() -> bool:
    # Asked outside the locker's transaction, which would see one snapshot of the activity.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        row = cursor.fetchone()
    return bool(row and row[0])


def hold(client: redis.Redis, sent: UsageEvent) -> None:
    """A settled reservation, as the gateway leaves one for billing to clear once recorded."""
    assert sent.account_id is not None
    keys = account_keys(sent.account_id)
    nanos = to_nanos(charge_for(sent.cost))
    client.hset(keys.holds, sent.event_id, f"{nanos}:{sent.key_id}")
    client.zadd(keys.expiry, {sent.event_id: 2**50})
    client.hincrby(keys.main, "held", nanos)


def age_pending(client: redis.Redis) -> None:
    """Make what the dead worker held look idle for CLAIM_IDLE_MS, as a minute would (IDLE
    sets the idle time, JUSTID leaves the delivery count alone)."""
    pending: Any = client.xpending_range(USAGE_STREAM, USAGE_GROUP, "-", "+", 100_000)
    for entry in pending:
        client.xclaim(
            USAGE_STREAM,
            USAGE_GROUP,
            entry["consumer"],
            0,
            [entry["message_id"]],
            idle=tasks.CLAIM_IDLE_MS + 1000,
            justid=True,
        )


def pending_count(client: redis.Redis) -> int:
    summary: Any = client.xpending(USAGE_STREAM, USAGE_GROUP)
    return int(summary["pending"])


def costs(count: int, start: int) -> list[str]:
    # Distinct amounts (to the 12 places a record keeps), so a charge counted twice or lost
    # shows in the sums.
    return [f"0.{start + n:06d}000004" for n in range(count)]


@pytest.fixture
def stream() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(USAGE_STREAM, tasks.DEAD_LETTERS)
    yield client
    client.delete(USAGE_STREAM, tasks.DEAD_LETTERS)
    client.close()


@pytest.mark.parametrize("kill", ["inside the transaction", "after the commit, before XACK"])
def test_a_worker_killed_mid_batch_and_started_again_records_every_event_once(
    stream: redis.Redis, tmp_path: Path, kill: str
) -> None:
    alice = User.objects.create_user("alice@example.com")
    bob = User.objects.create_user("bob@example.com")
    for owner in (alice, bob):
        ledger_credit(account=owner, amount=Decimal("1000"), note="for the test")
    # One batch of Alice's, then one of Bob's: the worker commits and acknowledges the first,
    # and is killed in the second.
    first = [event(alice, cost) for cost in costs(tasks.BATCH_SIZE, 1)]
    second = [event(bob, cost) for cost in costs(tasks.BATCH_SIZE, 2000)]
    ship(stream, [*first, *second])
    for sent in [*first, *second]:
        hold(stream, sent)
    where = stream.connection_pool.connection_kwargs
    relay = Relay(where.get("host", "127.0.0.1"), where.get("port", 6379))
    worker = Worker(f"redis://127.0.0.1:{relay.port}/{where.get('db', 0)}", tmp_path / "w1.log")
    try:
        with balance_locked(bob):
            tasks.usage_drain.delay()
            wait_until(waiting_on_a_lock, "batch waiting on the lock", worker)
            # Alice's batch is in and acknowledged; Bob's is read, inside its transaction.
            assert UsageRecord.objects.filter(account_id=alice.pk).count() == len(first)
            assert pending_count(stream) == len(second)
            if kill == "inside the transaction":
                worker.kill()
            else:
                relay.swallow()  # its XACK (and clearing the holds) will never arrive
        if kill != "inside the transaction":
            wait_until(
                lambda: UsageRecord.objects.filter(account_id=bob.pk).count() == len(second),
                "commit of the second batch",
                worker,
            )
            worker.kill()
    finally:
        worker.stop()
        relay.close()

    recorded_before = UsageRecord.objects.filter(account_id=bob.pk).count()
    assert recorded_before == (0 if kill == "inside the transaction" else len(second))
    assert pending_count(stream) == len(second)  # the dead worker's, never acknowledged
    dead = f"{socket.gethostname()}-{worker.process.pid}"  # its consumer (billing/tasks.py)
    later = [event(alice, cost) for cost in costs(50, 9000)]
    ship(stream, later)
    for sent in later:
        hold(stream, sent)
    age_pending(stream)

    sent_events = [*first, *second, *later]
    again = Worker(settings.REDIS_URL, tmp_path / "w2.log")
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while pending_count(stream) or stream.xlen(USAGE_STREAM):
            assert again.alive(), again.output()
            assert time.monotonic() < deadline, f"not drained:\n{again.output()}"
            tasks.usage_drain.delay()  # as beat does, every TOKENBYTE_USAGE_DRAIN_SECONDS
            time.sleep(1)
    finally:
        again.stop()

    ids = sorted(sent.event_id for sent in sent_events)
    assert sorted(UsageRecord.objects.values_list("event_id", flat=True)) == ids
    charges = LedgerEntry.objects.filter(kind=EntryKind.CHARGE)
    assert sorted(charges.values_list("event_id", flat=True)) == ids
    for owner in (alice, bob):
        mine = [sent for sent in sent_events if sent.account_id == owner.pk]
        charged = sum((charge_for(sent.cost) for sent in mine), Decimal(0))
        entries = charges.filter(account_id=owner.pk).values_list("amount", flat=True)
        assert sum(entries, Decimal(0)) == -charged
        assert balance_get(account_id=owner.pk) == ledger_sum(account_id=owner.pk)
        assert balance_get(account_id=owner.pk) == Decimal("1000") - charged
        keys = account_keys(owner.pk)
        assert stream.hlen(keys.holds) == 0  # each recorded charge's hold cleared
        assert int(stream.hget(keys.main, "held") or 0) == 0
    assert rollups_in_db() == rollups_of_records()
    assert pending_count(stream) == 0
    assert stream.xlen(USAGE_STREAM) == 0
    # The dead worker's consumer went with its last entry: restarts do not pile them up.
    consumers: Any = stream.xinfo_consumers(USAGE_STREAM, USAGE_GROUP)
    assert dead.encode() not in {consumer["name"] for consumer in consumers}
    assert "Traceback" not in again.output(), again.output()
