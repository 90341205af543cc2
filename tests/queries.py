"""Query counts across threads: the gateway looks keys up on threads of its own.

pytest-django's django_assert_num_queries sees one thread's connection only; this counts every
query any thread of this process runs, in the same style.
"""

import contextlib
import threading
from collections.abc import Iterator
from typing import Any
from unittest import mock

from django.db.backends.utils import CursorWrapper


@contextlib.contextmanager
def assert_num_queries_anywhere(expected: int) -> Iterator[list[str]]:
    executed: list[str] = []
    lock = threading.Lock()
    real_execute = CursorWrapper._execute
    real_executemany = CursorWrapper._executemany

    def execute(self: CursorWrapper, sql: str, *args: Any) -> Any:
        with lock:
            executed.append(sql)
        return real_execute(self, sql, *args)

    def executemany(self: CursorWrapper, sql: str, *args: Any) -> Any:
        with lock:
            executed.append(sql)
        return real_executemany(self, sql, *args)

    with (
        mock.patch.object(CursorWrapper, "_execute", execute),
        mock.patch.object(CursorWrapper, "_executemany", executemany),
    ):
        yield executed
    assert len(executed) == expected, (
        f"{len(executed)} queries ran in this process, {expected} expected: {executed}"
    )
