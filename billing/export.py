"""Streamed exports (CSV, JSON lines): rows are written as they are read, never gathered."""

import itertools
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async


class Echo:
    """A file-like target for csv.writer that hands back each row it is given."""

    def write(self, value: str) -> str:
        return value


def csv_cell(text: str) -> str:
    """Text as a spreadsheet cell that cannot run as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def in_chunks(rows: Iterator[str], *, size: int = 500) -> AsyncIterator[str]:
    """`rows` read `size` at a time on Django's sync thread (the ORM is synchronous) and handed
    on as they come. Under ASGI, Django reads a synchronous iterator whole before it sends a
    byte; an export of millions of rows must not sit in memory."""
    take = sync_to_async(lambda: "".join(itertools.islice(rows, size)), thread_sensitive=True)
    while chunk := await take():
        yield chunk
