"""Lua scripts sent by their SHA, and calls of one script coalesced into one pipelined write.

redis-py's Script objects check `SCRIPT EXISTS` before every pipeline they are queued on (a
round trip per batch); these are sent as EVALSHA, and loaded only when Redis says NOSCRIPT
(after a restart or a SCRIPT FLUSH). A reservation per request would otherwise be a write and
a read per request: calls made in one turn of the event loop share one (group commit).
"""

import asyncio
import hashlib
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from tokenbyte.redis import GatewayRedis, RedisUnavailable


class LuaScript:
    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()

    def queue(self, pipe: Any, keys: list[str], args: list[Any]) -> None:
        pipe.evalsha(self.sha, len(keys), *keys, *args)

    async def load(self, client: Any) -> None:
        await client.script_load(self.text)

    async def run(self, client: Any, keys: list[str], args: list[Any]) -> Any:
        """One run, by SHA; loaded first when Redis does not know it."""
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.load(client)
            return await client.evalsha(self.sha, len(keys), *keys, *args)


class Coalesced:
    """`await call(keys, args)`: one run of the script, sent with the others of this turn."""

    def __init__(self, redis: GatewayRedis, script: LuaScript, operation: str) -> None:
        self._redis = redis
        self._script = script
        self._operation = operation
        self._queue: list[tuple[list[str], list[Any], asyncio.Future[Any]]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((keys, args, future))
        if len(self._queue) == 1:
            loop.call_soon(self._flush_queued)
        return await future

    def _flush_queued(self) -> None:
        batch, self._queue = self._queue, []
        task = asyncio.create_task(self._flush(batch), name=f"{self._operation}-batch")
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[tuple[list[str], list[Any], asyncio.Future[Any]]]) -> None:
        try:
            results = await self._redis.call(
                self._operation,
                lambda client: self._send(client, batch),
                patient=True,
                callers=len(batch),
            )
        except Exception as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(RedisUnavailable(f"{self._operation}: {result}"))
            else:
                future.set_result(result)

    async def _send(self, client: Any, batch: list[tuple[list[str], list[Any], Any]]) -> list[Any]:
        if len(batch) == 1:  # alone this turn: a pipeline would only add its own bookkeeping
            keys, args, _ = batch[0]
            return [await self._script.run(client, keys, args)]
        results: list[Any] = []
        for _ in range(2):
            async with client.pipeline(transaction=False) as pipe:
                for keys, args, _ in batch:
                    self._script.queue(pipe, keys, args)
                results = await pipe.execute(raise_on_error=False)
            if not any(isinstance(result, NoScriptError) for result in results):
                return results
            await self._script.load(client)
        return results


def is_noscript(exc: BaseException) -> bool:
    return isinstance(exc, NoScriptError) or (
        isinstance(exc, ResponseError) and str(exc).startswith("NOSCRIPT")
    )
