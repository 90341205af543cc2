"""Reading one call's usage record for GET /v1/generation, off the event loop.

The reads have a small `DatabaseLane` of their own: they never queue behind key-cache misses or
holds (what model calls wait for), and a flood of them is refused at once (503) instead of
queueing without end.
"""

from django.db import Error as DatabaseError

from proxy.gateway.db import DatabaseLane, LaneFull
from proxy.gateway.errors import ServiceUnavailable
from proxy.gateway.stores import Generation, GenerationStore

THREADS = 2
BACKLOG = 64
BUSY_MESSAGE = "Too many generation lookups are under way; retry in a moment."
DOWN_MESSAGE = "Generation stats cannot be read now: the database is unreachable. Retry shortly."


class Generations:
    def __init__(self, store: GenerationStore) -> None:
        self._store = store
        self._lane = DatabaseLane("generations", threads=THREADS, backlog=BACKLOG)

    async def get(self, account_id: int, generation_id: str) -> Generation | None:
        """The account's call with this event id or answer `id`; None when it has none."""
        try:
            return await self._lane.run(self._store.get, account_id, generation_id)
        except LaneFull:
            raise ServiceUnavailable(BUSY_MESSAGE, headers=[(b"retry-after", b"1")]) from None
        except DatabaseError:
            raise ServiceUnavailable(DOWN_MESSAGE, headers=[(b"retry-after", b"1")]) from None

    async def close(self) -> None:
        await self._lane.close()
