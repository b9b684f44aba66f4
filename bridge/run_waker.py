"""Wake the per-run streams of one bridge when their run has a new event.

A run's history is a Redis list (``sy:run:{p…}:<run>:events``, cheap for a few events;
a stream key costs ~4.7 kB however small); it can't be read with a blocking call. So
each bridge runs one :class:`RunWaker`: a single ``XREAD BLOCK`` loop over the
inbox partitions' run-event streams ``sy:runs:events:{p…}`` (each written in the same
apply step as the list) that
sets the wake-up of each run it names, and of every list stream (:meth:`watch_any`).
A stream registers its wake-up *before* reading, so an event stored after that read
always wakes it. After a lost connection the loop reads on from its last entry id: no
wake-up is missed.

On a Redis Cluster the streams sit in other slots, and an XREAD of keys in several
slots is refused (CROSSSLOT): there the waker runs one blocking loop per stream, each
on its partition's node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError

from switchyard.engine.store import keys
from switchyard.engine.store.client import redis_client
from switchyard.schemas.settings import Settings

log = logging.getLogger("switchyard.bridge")

# One XREAD blocks at most this long, inside the Redis client's socket timeout (5 s).
BLOCK_MS = 2000
_BATCH = 500


class RunWaker:
    """Wake-ups per run id, set by new run events. ``start()``/``stop()``."""

    def __init__(self, settings: Settings, tags: Sequence[str]) -> None:
        # A client of its own: its one connection is always in a blocking read, and
        # stop() may have to cut it (below).
        self._client = redis_client(settings)
        # Each inbox partition's run-event stream (``tags``: the partitions' hash tags).
        self._streams = [keys.runs_events(tag) for tag in tags]
        # The streams each blocking read takes: all at once on one node, one by one on
        # a cluster (each in its own slot).
        self._groups = (
            [[stream] for stream in self._streams]
            if settings.redis_cluster
            else [list(self._streams)]
        )
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._any: set[asyncio.Event] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        if self._tasks:
            raise RuntimeError("RunWaker.start() called twice")
        last = await self._newest()
        self._tasks = [
            asyncio.create_task(
                self._listen({stream: last[stream] for stream in group}),
                name=f"switchyard-run-waker-{index}",
            )
            for index, group in enumerate(self._groups)
        ]

    async def stop(self) -> None:
        self._stopping = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            # redis-py can swallow a cancellation that lands in a blocking read and go
            # on waiting for the reply: cutting the connection ends the read.
            _, pending = await asyncio.wait(tasks, timeout=0.1)
            if pending:
                # A RedisCluster (see redis_client) has a pool per node: closing it
                # cuts them all.
                pool = getattr(self._client, "connection_pool", None)
                await (pool.disconnect() if pool is not None else self._client.aclose())
                await asyncio.wait(pending, timeout=1.0)
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    if task.done() and (error := task.exception()) is not None:
                        # Cut by the shutdown: redis-py fails a connection torn down
                        # mid-handshake (TLS makes that window wider) with an
                        # AttributeError, not a RedisError. Nothing is lost: we stop.
                        log.debug("a run-events reader ended with the shutdown: %r", error)
        with contextlib.suppress(RedisError):
            await self._client.aclose()
        for waiters in [*self._waiters.values(), self._any]:
            for waiter in waiters:
                waiter.set()
        self._waiters.clear()
        self._any.clear()

    def watch(self, run_id: str) -> asyncio.Event:
        """An event set at each new event of ``run_id``; :meth:`forget` it when done."""
        waiter = asyncio.Event()
        self._waiters.setdefault(run_id, set()).add(waiter)
        return waiter

    def watch_any(self) -> asyncio.Event:
        """An event set at each new entry of any partition's stream (the list streams');
        :meth:`forget_any` it when done."""
        waiter = asyncio.Event()
        self._any.add(waiter)
        return waiter

    def forget_any(self, waiter: asyncio.Event) -> None:
        self._any.discard(waiter)

    def forget(self, run_id: str, waiter: asyncio.Event) -> None:
        waiters = self._waiters.get(run_id)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[run_id]

    async def _newest(self) -> dict[str, str]:
        """Each stream's newest entry id ("0-0" for one without entries)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for stream in self._streams:
                pipe.xrevrange(stream, count=1)
            replies: list[Any] = await pipe.execute()
        return {
            stream: _text(entries[0][0]) if entries else "0-0"
            for stream, entries in zip(self._streams, replies, strict=True)
        }

    async def _listen(self, last: dict[str, str]) -> None:
        delay = 0.1
        # Checked each round: redis-py may swallow the cancel of a blocking read, and a
        # Redis Cluster client closed by stop() reconnects on the next command.
        while not self._stopped():
            try:
                reply: Any = await self._client.xread(_streams(last), count=_BATCH, block=BLOCK_MS)
                for stream, batch in reply or []:
                    for entry_id, fields in batch:
                        last[_text(stream)] = _text(entry_id)
                        self._wake(_text(fields.get(b"r", b"")))
                if reply:
                    for waiter in self._any:
                        waiter.set()
                delay = 0.1
            except RedisError as error:
                if self._stopped():
                    return
                log.warning("reading the run-event streams failed (%r); retrying", error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _stopped(self) -> bool:
        return self._stopping

    def _wake(self, run_id: str) -> None:
        for waiter in self._waiters.get(run_id, ()):
            waiter.set()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _streams(last: dict[str, str]) -> Any:
    """XREAD's streams argument (redis-py's annotation wants a dict of wider types)."""
    return dict(last)
