"""Stored responses' reads and writes, off the event loop (billing/stored_responses.py does
them; README.md "Stored responses" says what is kept and for how long).

They have a small `DatabaseLane` of their own, as GET /v1/generation's reads do: never queued
behind key-cache misses or holds. A read that cannot be made is a 503 (the request cannot be
answered without it); a save that cannot be made is logged, and the answer says `store: false`
(the call was served and charged; only its continuation is lost).
"""

import asyncio
import logging
from typing import Any

from django.db import Error as DatabaseError

from proxy.gateway.db import DatabaseLane, LaneFull
from proxy.gateway.errors import ServiceUnavailable
from proxy.gateway.stores import ResponseStore, StoredContext

logger = logging.getLogger(__name__)

THREADS = 2
# An answer waits at most this long for its response to be stored (a database held by a long
# write would otherwise hold it for SQLite's whole 20 s lock timeout).
SAVE_WAIT_SECONDS = 2.0
BACKLOG = 256
BUSY_MESSAGE = "Too many stored-response reads are under way; retry in a moment."
DOWN_MESSAGE = "Stored responses cannot be read now: the database is unreachable. Retry shortly."


class StoredResponses:
    def __init__(self, store: ResponseStore, *, enabled: bool) -> None:
        self.enabled = enabled  # TOKENBYTE_STORE_RESPONSES
        self._store = store
        self._lane = DatabaseLane("stored-responses", threads=THREADS, backlog=BACKLOG)

    async def _read(self, fn: Any, *args: Any) -> Any:
        try:
            return await self._lane.run(fn, *args)
        except LaneFull:
            raise ServiceUnavailable(BUSY_MESSAGE, headers=[(b"retry-after", b"1")]) from None
        except DatabaseError:
            raise ServiceUnavailable(DOWN_MESSAGE, headers=[(b"retry-after", b"1")]) from None

    async def context(self, account_id: int, response_id: str) -> StoredContext | None:
        result: StoredContext | None = await self._read(
            self._store.context, account_id, response_id
        )
        return result

    async def items(self, account_id: int, item_ids: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = await self._read(self._store.items, account_id, item_ids)
        return found

    async def get(
        self, account_id: int, response_id: str
    ) -> tuple[str, list[dict[str, Any]]] | None:
        """(the response object without `output`, as JSON text; its output items), or None."""
        found: tuple[str, list[dict[str, Any]]] | None = await self._read(
            self._store.get, account_id, response_id
        )
        return found

    async def input_items(self, account_id: int, response_id: str) -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] | None = await self._read(
            self._store.input_items, account_id, response_id
        )
        return found

    async def delete(self, account_id: int, response_id: str) -> bool:
        deleted: bool = await self._read(self._store.delete, account_id, response_id)
        return deleted

    async def save(
        self,
        account_id: int,
        key_id: int,
        response: dict[str, Any],
        input_items: list[dict[str, Any]],
        chain: list[str],
    ) -> bool:
        """Keep the response; whether it was kept within SAVE_WAIT_SECONDS (a failure is
        logged, never raised; a save still under way then goes on, and may yet keep it)."""
        saving = asyncio.ensure_future(
            self._lane.run(self._store.save, account_id, key_id, response, input_items, chain)
        )
        try:
            await asyncio.wait_for(asyncio.shield(saving), SAVE_WAIT_SECONDS)
        except TimeoutError:
            saving.add_done_callback(_retrieved)
            logger.warning(
                "response %s not stored within %.0f s (the database is busy); answered "
                "store: false",
                response.get("id"),
                SAVE_WAIT_SECONDS,
            )
            return False
        except (LaneFull, DatabaseError):
            logger.warning(
                "response %s not stored (the database did not take it); answered store: false",
                response.get("id"),
                exc_info=True,
            )
            return False
        return True

    async def close(self) -> None:
        await self._lane.close()


def _retrieved(saving: "asyncio.Future[None]") -> None:
    """A save that outlived its answer: its failure, if any, logged rather than lost."""
    if not saving.cancelled() and saving.exception() is not None:
        logger.warning("a late response save failed: %s", saving.exception())
