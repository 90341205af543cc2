"""Running Django ORM work from the gateway's event loop, off the hot path.

`run_in_db_thread` is asgiref's one shared thread (routing reloads, last-used flushes, probes).
Work that requests wait for, key-cache misses, has a `DatabaseLane` of its own instead: it
never queues behind that other work, and a flood of it fails fast instead of queueing forever.
A small read repeated every fraction of a second (the routing version, the key changes) has a
`PollingThread`, which keeps its connection between reads.
"""

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import Error as DatabaseError
from django.db import close_old_connections, connections

P = ParamSpec("P")
T = TypeVar("T")


def _with_fresh_connection(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    # Outside Django's request cycle nobody else recycles this thread's connection.
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


async def run_in_db_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return await sync_to_async(_with_fresh_connection, thread_sensitive=True)(fn, *args, **kwargs)


class LaneFull(Exception):
    """Every thread of the lane is busy and its backlog is full."""


class DatabaseLane:
    """A few threads of its own for one kind of database work, with a bounded backlog."""

    def __init__(self, name: str, *, threads: int, backlog: int) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix=name, initializer=self._adopt_thread
        )
        # Released when the work itself ends (not when a waiter gives up), so the bound
        # counts what the threads really have in hand.
        self._slots = threading.BoundedSemaphore(threads + backlog)
        self._connections: list[Any] = []  # every thread's Django connection wrappers
        self._lock = threading.Lock()

    def _adopt_thread(self) -> None:
        # Lets close() close this thread's connections from another thread once it has ended
        # (with CONN_MAX_AGE they outlive each call).
        wrappers = connections.all()
        for wrapper in wrappers:
            wrapper.inc_thread_sharing()
        with self._lock:
            self._connections.extend(wrappers)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` on one of the lane's threads; LaneFull at once past the bound."""
        if not self._slots.acquire(blocking=False):
            raise LaneFull
        try:
            future = self._executor.submit(lambda: _with_fresh_connection(fn, *args, **kwargs))
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return await asyncio.wrap_future(future)

    async def close(self) -> None:
        """Finish the work under way, stop the threads and close their connections."""
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            wrappers, self._connections = self._connections, []
        for wrapper in wrappers:
            wrapper.close()


class PollingThread:
    """One thread for a small query repeated often: its connection is kept between calls (a
    broken one is dropped, and the next call connects anew), so a poll costs one round trip."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        future = self._executor.submit(lambda: _keeping_connection(fn, *args, **kwargs))
        return await asyncio.wrap_future(future)

    async def close(self) -> None:
        closed = asyncio.wrap_future(self._executor.submit(connections.close_all))
        with contextlib.suppress(TimeoutError):  # behind a poll stuck on a dead database
            await asyncio.wait_for(closed, 5.0)
        self._executor.shutdown(wait=False)


def _keeping_connection(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    try:
        return fn(*args, **kwargs)
    except DatabaseError:
        with contextlib.suppress(DatabaseError):
            connections.close_all()
        raise
