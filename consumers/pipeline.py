"""Overlapping batches of one consumer, committed in the order they were fetched.

The Kafka worker used to handle a fetched batch, commit it, and only then fetch the
next: a record that arrived while the batch was in hand waited for the batch's
slowest handler and for the commit's round trip. Here a batch is handled as soon as
it is fetched and the next fetch does not wait for it; what stays ordered is the
commit. A batch's offsets are committed once it and every batch fetched before it are
done (each record handled and its report acknowledged by the broker), so a crash
leaves everything unfinished uncommitted, and a partition's committed offset never
passes a record still in hand. Commits of batches that finish together are merged
into one request, made by a task of its own so the fetch loop never waits on one;
after a commit the next waits ``commit_interval`` seconds, so an idle-ish worker
handling records one at a time does not send a commit per record (a crash then
redelivers at most that much more, which node-run ids make harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

Offsets = dict[Any, int]  # TopicPartition → the next offset to read


class BatchPipeline:
    """Batches in flight at once (``capacity`` records at most), committed in order.

    At most ``max_batches`` batches are unfinished at once: that is what makes batches
    grow under load. Idle, each record is a batch of its own, handled at once; busy,
    the next fetch waits for a batch to finish and takes everything that arrived in
    the meantime, instead of a fetch, a task and a commit per record. A slow batch
    takes one of the slots, never the others.

    Lifecycle: :meth:`start`, then :meth:`add` batches (after :meth:`room` says how
    many records may be fetched), then :meth:`drain`, which waits for every batch in
    hand and commits it, or :meth:`abandon`, which cancels them. A batch whose work
    raises stops the commits (nothing after it is committed): :meth:`room` and
    :meth:`drain` raise its error.
    """

    def __init__(
        self, capacity: int, commit: Callable[[Offsets], Awaitable[None]],
        commit_interval: float = 0.0, max_batches: int = 4,
    ) -> None:  # fmt: skip
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1 (got {capacity})")
        self.capacity = capacity
        self._commit = commit
        self._batches: deque[tuple[asyncio.Future[Any], Offsets]] = deque()
        self._in_flight = 0  # records of batches not finished yet
        self._unfinished = 0  # batches not finished yet
        self.max_batches = max_batches
        self._changed = asyncio.Event()
        self._closing = False
        self._closed = asyncio.Event()
        self._commit_interval = commit_interval
        self._committer: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def start(self) -> None:
        if self._committer is not None:
            raise RuntimeError("BatchPipeline.start() called twice")
        self._committer = asyncio.create_task(self._commit_in_order(), name="batch-commits")

    async def room(self) -> int:
        """How many more records may be taken now; waits while the pipeline is full."""
        while True:
            self._raise_failure()
            if self._in_flight < self.capacity and self._unfinished < self.max_batches:
                return self.capacity - self._in_flight
            self._changed.clear()
            await self._changed.wait()

    def add(self, work: Awaitable[Any], offsets: Offsets, records: int) -> None:
        """A fetched batch: ``work`` handles its ``records`` records; ``offsets`` are
        committed when it and every batch added before it are done."""
        done = asyncio.ensure_future(work)
        self._in_flight += records
        self._unfinished += 1
        done.add_done_callback(lambda _: self._finished(records))
        self._batches.append((done, offsets))
        self._changed.set()

    def _finished(self, records: int) -> None:
        self._in_flight -= records
        self._unfinished -= 1
        self._changed.set()

    def _raise_failure(self) -> None:
        committer = self._committer
        if committer is not None and committer.done():
            committer.result()  # its error (or CancelledError): the commits have stopped

    async def _commit_in_order(self) -> None:
        while self._batches or not self._closing:
            if not self._batches:
                self._changed.clear()
                await self._changed.wait()
                continue
            await asyncio.wait([self._batches[0][0]])
            offsets: Offsets = {}
            # The head and every finished batch right behind it: one commit request.
            while self._batches and self._batches[0][0].done():
                done, batch_offsets = self._batches[0]
                if done.cancelled() or done.exception() is not None:
                    break  # nothing from this batch on is committed
                self._batches.popleft()
                offsets.update(batch_offsets)
            if offsets:
                await self._commit(offsets)
                await self._pause()
            if self._batches and self._batches[0][0].done():
                self._batches[0][0].result()  # the failed batch: its error ends the commits

    async def _pause(self) -> None:
        if self._commit_interval > 0 and not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), self._commit_interval)

    def abandon(self) -> None:
        """Cancel every batch in hand and the commits (a forced stop): nothing more is
        committed, so all of it is redelivered."""
        if self._committer is not None:
            self._committer.cancel()
        for done, _ in self._batches:
            done.cancel()
        self._batches.clear()

    async def drain(self) -> None:
        """Wait for every batch in hand and commit them; idempotent."""
        committer = self._committer
        if committer is None:
            return
        self._closing = True
        self._closed.set()
        self._changed.set()
        try:
            await committer
        finally:
            for done, _ in self._batches:  # after a failure: nothing of theirs is committed
                done.cancel()
            self._batches.clear()
