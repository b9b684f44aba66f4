"""Waiting for the engine to create a run: one subscription to ``sy:notify`` per bridge.

The engine PUBLISHes a run id in the same atomic step that stores the run. The bridge
subscribes once, at start, before it serves a request; a trigger registers its run id
here *before* publishing ``RunTriggered``, so the notification can't be missed while
the subscription is up. A dropped subscription is re-established; a trigger whose
notification fell in the gap answers 202 after the wait, as on any slow engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from switchyard.engine.store import keys

log = logging.getLogger("switchyard.bridge")


class RunNotifier:
    """Futures resolved when the engine announces a run id. ``start()``/``stop()``."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._pubsub: PubSub | None = None

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("RunNotifier.start() called twice")
        self._pubsub = await self._subscribe()
        self._task = asyncio.create_task(self._listen(), name="switchyard-notify")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._pubsub is not None:
            with contextlib.suppress(RedisError):
                await self._pubsub.aclose()
            self._pubsub = None
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.cancel()
        self._waiters.clear()

    async def _subscribe(self) -> PubSub:
        # A Redis Cluster client routes SUBSCRIBE by the channel's slot from its slot
        # map, which it loads on its first command: before that, subscribe fails.
        await self._client.initialize()
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(keys.NOTIFY_CHANNEL)
        return pubsub

    def expect(self, run_id: str) -> asyncio.Future[None]:
        """A future done when ``run_id`` is announced; call :meth:`forget` when done."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(run_id, []).append(future)
        return future

    def forget(self, run_id: str, future: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(run_id)
        if waiters and future in waiters:
            waiters.remove(future)
            if not waiters:
                del self._waiters[run_id]

    def _announce(self, run_id: str) -> None:
        for waiter in self._waiters.pop(run_id, []):
            if not waiter.done():
                waiter.set_result(None)

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            try:
                assert self._pubsub is not None
                async for message in self._pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    data = message["data"]
                    self._announce(data.decode() if isinstance(data, bytes) else str(data))
                    delay = 0.1
            except RedisError as error:
                log.warning(
                    "lost the %s subscription (%r); resubscribing", keys.NOTIFY_CHANNEL, error
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            with contextlib.suppress(RedisError):
                if self._pubsub is not None:
                    await self._pubsub.aclose()
                self._pubsub = await self._subscribe()
