"""Unique ids for requests and usage events, cheaply: no system call per id."""

import itertools
import secrets


class IdSource:
    """64 random bits per process (made in the process that serves) + a 64-bit counter.

    Ids are 32 hex digits, like uuid4().hex, and unique across processes and restarts.
    """

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._next = itertools.count(1).__next__

    def __call__(self) -> str:
        return f"{self._prefix}{self._next():016x}"
