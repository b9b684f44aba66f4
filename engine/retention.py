"""Retention of finished runs: ``run_retention_days`` after a run finished, it goes.

:class:`RunPruner` runs in the background of a long-running process (the timers
process hosts it): every ``interval_s`` it takes at most ``batch`` runs from
``sy:runs:finished`` whose ``completedAt`` is older than the retention and deletes
each with everything that is its (:mod:`switchyard.engine.store.prune`: the run, its
node runs, logs, outbox leftovers, index entries, claims, lookups), one atomic script
call per run. A run is only ever deleted while it is COMPLETED and unchanged since
the pruner read it; a re-run is a new run, so it never touches the old one. The
engine never waits on the pruner: it has a Redis connection of its own and short
scripts; a full batch is followed by a short pause, not the whole interval, so a
backlog drains without hogging Redis. Several pruners may run at once: the deletes
are idempotent, and the counters count what each one's scripts actually removed.

Before each batch it adds a few runs completed before ``sy:runs:finished`` existed
(:meth:`PruneStore.backfill`, in pages of ``batch``), so old runs expire too.

The first batch comes ``first_delay_s`` (5 min) after start. ``run_retention_days =
0`` keeps runs forever: the pruner then does nothing at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from types import TracebackType

import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError

from switchyard.engine.machine.state import RunState, load_state
from switchyard.engine.store.client import connect, redis_client
from switchyard.engine.store.prune import PrunePlan, PruneStore, prune_plan, score_ms
from switchyard.engine.store.run_entities import run_entities
from switchyard.engine.store.workflows import WorkflowStore
from switchyard.schemas.settings import Settings
from switchyard.topics.telemetry import metrics

log = logging.getLogger("switchyard.retention")

INTERVAL_S = 60.0
# How long stop() lets a batch in hand finish before it cancels it.
_STOP_GRACE_S = 5.0
BATCH = 500
# After a full batch (a backlog): the next one starts after this, not a whole interval.
PAUSE_S = 1.0
# The first batch waits this long after start: a process restarting in a loop (or a
# test's short-lived one) never prunes; one that stays up does.
FIRST_DELAY_S = 300.0
# Runs per pipelined round trip of state reads and script calls.
_CHUNK = 50
_MAX_BACKOFF_S = 30.0

PRUNED = Counter(
    "switchyard_retention_pruned",
    "What the retention pruner removed from Redis: runs, their node runs, log lines, "
    "index entries (run indexes, pending claims, the pending-outbox set) and keys.",
    ["kind"],
)
OLDEST_FINISHED_AGE = Gauge(
    "switchyard_retention_oldest_finished_age_seconds",
    "Age of the oldest finished run still in Redis (sy:runs:finished), read at scrape "
    "time; about the retention when pruning keeps up, 0 when there is none.",
)
KINDS = ("runs", "node_runs", "log_entries", "index_entries", "keys")
_CHILDREN = {kind: PRUNED.labels(kind=kind) for kind in KINDS}


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class PruneCounts:
    """What one batch removed; ``changed`` runs were left (changed since read)."""

    runs: int = 0
    node_runs: int = 0
    log_entries: int = 0
    index_entries: int = 0
    keys: int = 0
    changed: int = 0
    backfilled: int = 0

    def add(self, other: PruneCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def record(counts: PruneCounts) -> None:
    if not metrics.enabled():
        return
    for kind, child in _CHILDREN.items():
        amount = getattr(counts, kind)
        if amount:
            child.inc(amount)


class RunPruner:
    """Deletes runs finished longer than the retention ago, in the background.

    ``clock`` is the time the retention counts back from (tests pass a fixed one);
    :meth:`prune_batch` is one batch, which the background loop repeats.
    """

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        *,
        clock: Callable[[], datetime] = utc_now,
        interval_s: float = INTERVAL_S,
        batch: int = BATCH,
        pause_s: float = PAUSE_S,
        first_delay_s: float = FIRST_DELAY_S,
    ) -> None:
        self.retention = timedelta(days=settings.run_retention_days)
        self.store = PruneStore(redis, settings.inbox_partitions)
        self.workflows = WorkflowStore(redis)
        self.clock = clock
        self.interval_s = interval_s
        self.batch = batch
        self.pause_s = pause_s
        self.first_delay_s = first_delay_s
        self.total = PruneCounts()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._started = False

    @property
    def enabled(self) -> bool:
        return self.retention > timedelta(0)

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("RunPruner.start() called twice: a pruner runs one loop")
        self._started = True
        if not self.enabled:
            log.info("run retention is 0: finished runs are kept forever")
            return
        metrics.add_refresher(self.refresh_gauge)
        self._task = asyncio.create_task(self._loop(), name="run-pruner")

    async def stop(self) -> None:
        """Stop after the batch in hand (each script call of it is atomic), cancelling
        it only past ``_STOP_GRACE_S``; idempotent. A cancel right after a batch's calls
        returned lost its counts (the runs gone, ``total`` not told)."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            _, pending = await asyncio.wait({task}, timeout=_STOP_GRACE_S)
            for late in pending:
                late.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> RunPruner:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _loop(self) -> None:
        backoff = self.pause_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.first_delay_s)
        while not self._stopping.is_set():
            try:
                counts = await self.prune_batch()
            except (RedisError, OSError) as error:
                log.warning("retention: Redis failed (%r); retrying in %.0f s", error, backoff)
                wait, backoff = backoff, min(backoff * 2, _MAX_BACKOFF_S)
            else:
                backoff = self.pause_s
                full = counts.runs + counts.changed >= self.batch
                wait = self.pause_s if full else self.interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait)

    async def prune_batch(self, now: datetime | None = None) -> PruneCounts:
        """Backfill a page, then delete up to ``batch`` runs finished before
        ``now - retention`` (``now`` defaults to the clock)."""
        counts = PruneCounts()
        if not self.enabled:
            return counts
        cutoff = score_ms((now or self.clock()) - self.retention)
        counts.backfilled = await self._backfill(cutoff)
        run_ids = await self.store.due(cutoff, self.batch)
        for start in range(0, len(run_ids), _CHUNK):
            counts.add(await self._prune(run_ids[start : start + _CHUNK], cutoff))
        record(counts)
        self.total.add(counts)
        if counts.runs:
            log.info(
                "retention: pruned %d runs finished over %g days ago (%d node runs, %d log "
                "lines, %d index entries, %d keys; %d changed meanwhile, left)",
                counts.runs, self.retention / timedelta(days=1), counts.node_runs,
                counts.log_entries, counts.index_entries, counts.keys, counts.changed,
            )  # fmt: skip
        return counts

    async def _prune(self, run_ids: Sequence[str], cutoff_ms: int) -> PruneCounts:
        counts = PruneCounts()
        plans: list[PrunePlan] = []
        for run_id, raw in zip(run_ids, await self.store.states(run_ids), strict=True):
            state = self._readable(run_id, raw)
            if raw is None:
                continue  # gone already (another pruner): its index entry went with it
            if state is None or state.completed_at is None:
                await self.store.forget(run_id)  # kept, and no longer read every batch
                continue
            finished = score_ms(state.completed_at)
            if finished > cutoff_ms:  # never delete a run that did not finish long ago
                await self.store.reindex(run_id, finished)
                continue
            entities = await self._entities(state)
            plans.append(prune_plan(state, raw, entities, self.store.tag_of(run_id)))
        for done in await self.store.prune(plans):
            if done.outcome == 1:
                counts.runs += 1
                counts.node_runs += done.node_runs
                counts.log_entries += done.log_entries
                counts.index_entries += done.index_entries
                counts.keys += done.keys
            elif done.outcome == 0:
                counts.changed += 1
        return counts

    def _readable(self, run_id: str, raw: bytes | None) -> RunState | None:
        if raw is None:
            return None  # gone already: its script call would be a no-op
        try:
            return load_state(raw)
        except ValueError as error:  # a document that doesn't fit RunState's types
            log.warning("retention: run %s has a state that can't be read, kept: %s", run_id, error)
            return None

    async def _entities(self, state: RunState) -> list[tuple[str, str]]:
        workflow = await self.workflows.get(state.workflow_identifier, state.workflow_version)
        return [] if workflow is None else run_entities(state, workflow)

    async def _backfill(self, cutoff_ms: int) -> int:
        missing = await self.store.backfill(cutoff_ms, self.batch)
        finished: dict[str, int] = {}
        for run_id, raw in zip(missing, await self.store.states(missing), strict=True):
            state = self._readable(run_id, raw)
            if state is not None and state.completed_at is not None:
                finished[run_id] = score_ms(state.completed_at)
        await self.store.add_finished(finished)
        return len(finished)

    async def refresh_gauge(self) -> None:
        """Scrape time: the age of the oldest finished run in Redis."""
        if not metrics.enabled() or self._stopping.is_set():
            return
        oldest = await self.store.oldest_finished_ms()
        age = 0.0 if oldest is None else max(0.0, score_ms(self.clock()) - oldest) / 1000
        OLDEST_FINISHED_AGE.set(age)


@contextlib.asynccontextmanager
async def pruning(settings: Settings) -> AsyncIterator[RunPruner]:
    """A pruner in the background of the block, on a Redis connection of its own (so
    the host's own Redis work never queues behind it)."""
    client = redis_client(settings)
    try:
        await connect(client)
        async with RunPruner(settings, client) as pruner:
            yield pruner
    finally:
        await client.aclose()
