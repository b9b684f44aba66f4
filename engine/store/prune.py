"""Deleting finished runs from Redis: the keys one run holds (pure), and the store calls
the retention pruner (:mod:`switchyard.engine.retention`) makes.

A run is deleted by ``prune_run.lua`` in one atomic step with every key it touches in
``KEYS`` (one run per call, so it stays one slot's worth of work per call on a
cluster): its hash, logs, outbox leftovers, event list, its entries in every run
index, its node runs' lookup entries, leftover claims, external-id lookups and the
per-node-run keys of the entity executor and the bridge. The script first checks the
stored state is byte for byte the one the plan was made from (its SHA-1): a run
changed meanwhile is left for the next pass, one already gone is a no-op.

Finished runs are found in ``sy:runs:finished`` (by ``completedAt``), which the apply
step writes as a run completes. Runs completed before that index existed are added by
:meth:`PruneStore.backfill`, which walks ``sy:runs:status:COMPLETED`` (by
``createdAt``) behind a cursor up to the cutoff: a run finishes after it starts, so a
run created after the cutoff can't be due yet, and the walk only ever covers what is
older than the retention.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, get_args

import redis.asyncio as aioredis

from switchyard.engine.machine.state import RunState
from switchyard.engine.store import keys
from switchyard.engine.store.calls import side_by_side
from switchyard.engine.store.slots import partition_tag
from switchyard.schemas import RunResult, RunStatus

_STATUSES: tuple[str, ...] = get_args(RunStatus)
_RESULTS: tuple[str, ...] = get_args(RunResult)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def score_ms(value: datetime) -> int:
    """An index score: whole ms since the epoch (as ``plan.py`` writes them)."""
    return (value - _EPOCH) // _MS


@dataclass
class PrunePlan:
    """Everything one run holds in Redis, as ``prune_run.lua`` takes it."""

    run_id: str
    digest: str  # SHA-1 (hex) of the stored state the plan was made from
    tag: str = ""  # the run's inbox partition's hash tag: every key of the script has it
    deleted: list[str] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)
    buckets: list[tuple[str, str]] = field(default_factory=list)  # (hash, node run id)
    claims: list[tuple[str, str]] = field(default_factory=list)  # (sorted set, node run id)
    external: list[tuple[str, str]] = field(default_factory=list)  # (key, node run id)
    # Keys of the run outside its partition's slot (entity writes, answers): deleted in
    # a call of their own after the script (each expires anyway: a crash between the
    # two leaves them to their TTL).
    elsewhere: list[str] = field(default_factory=list)

    def keys_and_args(self) -> tuple[list[str], list[str]]:
        pairs = [*self.buckets, *self.claims, *self.external]
        script_keys = [
            keys.run(self.run_id, self.tag), keys.runs_finished(self.tag),
            keys.logs(self.run_id, self.tag), keys.outbox_pending(self.tag), *self.deleted,
            *self.indexes, *(key for key, _ in pairs),
        ]  # fmt: skip
        counts = [len(self.deleted), len(self.indexes), len(self.buckets), len(self.claims)]
        args = [
            self.run_id, self.digest, *map(str, counts), str(len(self.external)),
            *(member for _, member in pairs),
        ]  # fmt: skip
        return script_keys, args


def prune_plan(
    state: RunState, raw: bytes, entities: Sequence[tuple[str, str]], tag: str
) -> PrunePlan:
    """The plan deleting run ``state`` (stored as ``raw``) and what is its.

    ``entities`` are the ``(blueprint, entity)`` pairs its creation indexed it under
    (:func:`~switchyard.engine.store.run_entities.run_entities`); ``tag`` is its
    partition's (``keys.tag_of``). Every status and
    result index is named, not just the current one: a ZREM of a non-member costs
    nothing and a stale entry would otherwise outlive the run.
    """
    run_id = state.run_id
    plan = PrunePlan(run_id=run_id, digest=hashlib.sha1(raw).hexdigest(), tag=tag)
    plan.deleted += [keys.outbox(run_id, tag), keys.run_events(run_id, tag)]
    plan.indexes += [
        keys.runs_all(tag),
        keys.runs_of_workflow(state.workflow_identifier, tag),
        keys.runs_of_version(state.workflow_version, tag),
        keys.runs_by(state.created_by, tag),
        *(keys.runs_with_status(status, tag) for status in _STATUSES),
        *(keys.runs_with_result(result, tag) for result in _RESULTS),
        *(keys.runs_of_entity(blueprint, entity, tag) for blueprint, entity in entities),
    ]
    for nr in state.node_runs:
        plan.buckets.append((keys.node_runs_bucket(nr.id, tag), nr.id))
        plan.elsewhere += [keys.entity_node_run(nr.id), keys.answered(nr.id)]
        if nr.installation_id is not None:
            plan.deleted.append(keys.claim(nr.id, tag))
            plan.claims.append((keys.claims(nr.installation_id, tag), nr.id))
        if nr.external_run_id:
            plan.external.append((keys.external_run(nr.external_run_id, tag), nr.id))
    return plan


@dataclass(frozen=True)
class Pruned:
    """What one ``prune_run.lua`` call did: ``outcome`` 1 deleted, 0 the run changed
    since its plan (left), -1 already gone; then what it removed."""

    outcome: int
    log_entries: int = 0
    keys: int = 0
    index_entries: int = 0
    node_runs: int = 0


def _lua(name: str) -> str:
    return resources.files("switchyard.engine.store").joinpath("lua", name).read_text()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class PruneStore:
    """The pruner's reads and deletes; shares the caller's Redis client."""

    def __init__(self, client: aioredis.Redis, partitions: int) -> None:
        self.client = client
        self.partitions = partitions
        self._prune = client.register_script(_lua("prune_run.lua"))

    def tag_of(self, run_id: str) -> str:
        return keys.tag_of(run_id, self.partitions)

    def tags(self) -> list[str]:
        return [partition_tag(p, self.partitions) for p in range(self.partitions)]

    async def due(self, cutoff_ms: int, limit: int) -> list[str]:
        """Up to ``limit`` run ids that finished at or before ``cutoff_ms``, oldest first
        (each partition's oldest, merged)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for tag in self.tags():
                pipe.zrangebyscore(keys.runs_finished(tag), "-inf", cutoff_ms,
                                   start=0, num=limit, withscores=True)  # fmt: skip
            pages: list[list[tuple[Any, float]]] = await pipe.execute()
        merged = heapq.merge(*pages, key=lambda entry: entry[1])
        return [_text(run_id) for run_id, _ in itertools.islice(merged, limit)]

    async def states(self, run_ids: Sequence[str]) -> list[bytes | None]:
        """The stored state of each run (None: gone), in one round trip."""
        async with self.client.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.hget(keys.run(run_id, self.tag_of(run_id)), "state")
            found: list[bytes | None] = await pipe.execute()
        return found

    async def prune(self, plans: Sequence[PrunePlan]) -> list[Pruned]:
        """One script call per run (each atomic on its own), all at once."""
        if not plans:
            return []
        calls = [plan.keys_and_args() for plan in plans]
        # Side by side (a cluster pipeline loads no scripts), each in its run's slot.
        replies = await side_by_side(self._prune(keys=k, args=a) for k, a in calls)
        pruned = [Pruned(*(int(value) for value in reply)) for reply in replies]
        elsewhere = [k for plan, p in zip(plans, pruned, strict=True) if p.outcome == 1
                     for k in plan.elsewhere]  # fmt: skip
        if elsewhere:  # one DEL per key: each is in its own slot
            async with self.client.pipeline(transaction=False) as pipe:
                for key in elsewhere:
                    pipe.delete(key)
                await pipe.execute()
        return pruned

    async def forget(self, run_id: str) -> None:
        """Take a run out of ``sy:runs:finished`` without deleting it (its state can't
        be read, or it is not finished: it stays in Redis, and the pruner no longer
        reads it every batch)."""
        await self.client.zrem(keys.runs_finished(self.tag_of(run_id)), run_id)

    async def reindex(self, run_id: str, finished_ms: int) -> None:
        """Put a run back in ``sy:runs:finished`` at its true finish time."""
        await self.client.zadd(keys.runs_finished(self.tag_of(run_id)), {run_id: finished_ms})

    async def oldest_finished_ms(self) -> int | None:
        async with self.client.pipeline(transaction=False) as pipe:
            for tag in self.tags():
                pipe.zrange(keys.runs_finished(tag), 0, 0, withscores=True)
            firsts = [int(found[0][1]) for found in await pipe.execute() if found]
        return min(firsts, default=None)

    async def backfill(self, cutoff_ms: int, limit: int) -> list[str]:
        """Up to ``limit`` COMPLETED runs created after the backfill cursor and at or
        before ``cutoff_ms`` that ``sy:runs:finished`` lacks; the cursor moves past the
        runs read. The caller adds them (:meth:`add_finished`) from their states.

        Runs sharing the last score read are all taken at once, so the cursor can move
        past that score without skipping any (runs created in one ms are few)."""
        missing: list[str] = []
        for tag in self.tags():
            missing += await self._backfill(tag, cutoff_ms, limit)
        return missing

    async def _backfill(self, tag: str, cutoff_ms: int, limit: int) -> list[str]:
        """:meth:`backfill` in one partition (its cursor a field of the backfill hash)."""
        cursor = await self.client.hget(keys.RETENTION_BACKFILL, tag)
        low = f"({_text(cursor)}" if cursor is not None else "-inf"
        status = keys.runs_with_status("COMPLETED", tag)
        page: list[Any] = await self.client.zrangebyscore(
            status, low, cutoff_ms, start=0, num=limit, withscores=True
        )
        if not page:
            return []
        last = int(page[-1][1])
        ids = [_text(run_id) for run_id, score in page if int(score) < last]
        ids += [_text(r) for r in await self.client.zrangebyscore(status, last, last)]
        if cursor is None or last > int(_text(cursor)):
            await self.client.hset(keys.RETENTION_BACKFILL, tag, last)
        scores = await self.client.zmscore(keys.runs_finished(tag), ids)
        return [run_id for run_id, score in zip(ids, scores, strict=True) if score is None]

    async def add_finished(self, finished: dict[str, int]) -> None:
        """Index runs by their finish time (ms); NX: one the engine indexed stays as is."""
        by_tag: dict[str, dict[str, int]] = {}
        for run_id, finished_ms in finished.items():
            by_tag.setdefault(self.tag_of(run_id), {})[run_id] = finished_ms
        for tag, runs in by_tag.items():
            await self.client.zadd(keys.runs_finished(tag), runs, nx=True)
