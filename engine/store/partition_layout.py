"""Key layout 1 → 2: every run key re-tagged by its inbox partition (``docs/cluster-layout.md``).

Layout 1 tagged a run's keys by run id and kept global indexes; layout 2 keeps all of a
partition's runs, their indexes, timers, claims and counters under the partition's hash
tag (``slots.py``), so one script call per partition of a batch works on a Redis
Cluster. Layout 1 only ever ran on a single Redis, where this step runs (engines,
bridges and executors stopped: ``switchyard state upgrade``), before the data moves
to a cluster.

Idempotent: each key is copied to its new name and then deleted, and a key already
gone is skipped, so a run after a crash half-way finishes the job. The old all-runs
event stream is dropped (a list stream's cursor of layout 1 means nothing in layout 2:
its client reloads and reconnects, as after the cap).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis

from switchyard.engine.store import keys
from switchyard.engine.store.slots import partition_tag

Say = Callable[[str], None]
_BATCH = 500
_P = keys.PREFIX
# Layout 1's names of the keys that move (keys.py of that release).
_OLD_INDEX_KINDS = ("wf", "version", "by", "status", "result", "entity")
# A run's hash, outbox, logs and events in layout 1; layout 2's "sy:run:{p…}:<run>…"
# does not match.
_OLD_RUN_KEY = re.compile(rf"{_P}run:{{(?P<run>[^}}]+)}}(?P<part>:outbox|:logs|:events)?")
_NEW_RUN_KEY = {None: keys.run, ":outbox": keys.outbox, ":logs": keys.logs,
                ":events": keys.run_events}  # fmt: skip


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class _Mover:
    client: aioredis.Redis
    partitions: int
    dry_run: bool
    moved: int = 0
    # The pending node runs whose records the claims part moved (a dry run leaves them
    # in place: not to be counted again as acknowledged ones).
    pending: set[str] = field(default_factory=set)

    def tag(self, run_id: str) -> str:
        return keys.tag_of(run_id, self.partitions)

    def tags(self) -> list[str]:
        return [partition_tag(p, self.partitions) for p in range(self.partitions)]

    async def scan(self, pattern: str, type_: str | None = None) -> AsyncIterator[str]:
        async for key in self.client.scan_iter(match=pattern, count=_BATCH, _type=type_):
            yield _text(key)

    async def rename(self, old: str, new: str) -> None:
        """``old`` to ``new`` (one Redis: no slot rule), unless it is gone already."""
        if not await self.client.exists(old):
            return
        self.moved += 1
        if not self.dry_run:
            await self.client.rename(old, new)

    async def runs(self) -> None:
        """Each run's hash, outbox, logs and event list to its partition's names. Each
        key found on its own: a step interrupted after moving a run's hash, run again,
        still finds (and moves) the run's other keys."""
        async for key in self.scan(f"{_P}run:{{*"):
            found = _OLD_RUN_KEY.fullmatch(key)
            if found is not None:
                run_id = found["run"]
                await self.rename(key, _NEW_RUN_KEY[found["part"]](run_id, self.tag(run_id)))

    async def index(self, old: str, new_of: Callable[[str], str]) -> None:
        """A sorted set across runs split into one per partition (``new_of(tag)``)."""
        split: dict[str, dict[str, float]] = {}
        async for member, score in self.client.zscan_iter(old, count=_BATCH):
            run_id = _text(member)
            split.setdefault(self.tag(run_id), {})[run_id] = score
        if not split:
            return
        self.moved += 1
        if not self.dry_run:
            for tag, members in split.items():
                await self.client.zadd(new_of(tag), members)
            await self.client.delete(old)

    async def indexes(self) -> None:
        await self.index(f"{_P}runs:all", keys.runs_all)
        await self.index(f"{_P}runs:finished", keys.runs_finished)
        for kind in _OLD_INDEX_KINDS:
            prefix = f"{_P}runs:{kind}:"
            async for key in self.scan(f"{prefix}*", "zset"):
                rest = key[len(prefix) :]
                if rest.startswith("{"):  # layout 2's own
                    continue
                await self.index(key, _per_partition(kind, rest))

    async def node_runs(self) -> None:
        """The node-run → run buckets, then the external ids (found through them)."""
        async for key in self.scan(f"{_P}nr:??", "hash"):
            entries = {_text(k): _text(v) for k, v in (await self.client.hgetall(key)).items()}
            self.moved += 1
            if self.dry_run:
                continue
            for node_run_id, run_id in entries.items():
                await self.client.hset(
                    keys.node_runs_bucket(node_run_id, self.tag(run_id)), node_run_id, run_id
                )
            await self.client.delete(key)

    async def external_ids(self) -> None:
        async for key in self.scan(f"{_P}ext:*", "string"):
            external = key[len(f"{_P}ext:") :]
            if external.startswith("{"):
                continue
            node_run_id = await self.client.get(key)
            if node_run_id is None:
                continue
            run_id = await self._run_of(_text(node_run_id))
            if run_id is not None:
                await self.rename(key, keys.external_run(external, self.tag(run_id)))

    async def _run_of(self, node_run_id: str) -> str | None:
        for tag in self.tags():
            found = await self.client.hget(keys.node_runs_bucket(node_run_id, tag), node_run_id)
            if found is not None:
                return _text(found)
        old = await self.client.hget(f"{_P}nr:{node_run_id[5:7]}", node_run_id)  # dry run
        return None if old is None else _text(old)

    async def claims(self) -> None:
        """Each claim record, then each installation's pending set, by the record's run."""
        async for key in self.scan(f"{_P}claims:*", "zset"):
            installation = key[len(f"{_P}claims:") :]
            if installation.startswith("{"):
                continue
            pending: Any = await self.client.zrange(key, 0, -1, withscores=True)
            self.moved += 1
            for member, score in pending:
                node_run_id = _text(member)
                tag = await self._claim_tag(node_run_id)
                if tag is None:
                    continue  # no record: nothing to claim
                if not self.dry_run:  # the entry first: a moved record is still found
                    await self.client.zadd(keys.claims(installation, tag), {node_run_id: score})
                await self.rename(f"{_P}claim:{node_run_id}", keys.claim(node_run_id, tag))
                self.pending.add(node_run_id)
            if not self.dry_run:
                await self.client.delete(key)
        async for key in self.scan(f"{_P}claim:*", "hash"):  # acked: no longer pending
            node_run_id = key[len(f"{_P}claim:") :]
            if node_run_id.startswith("{") or node_run_id in self.pending:
                continue
            run_id = await self.client.hget(key, "run")
            if run_id is not None:
                await self.rename(key, keys.claim(node_run_id, self.tag(_text(run_id))))

    async def _claim_tag(self, node_run_id: str) -> str | None:
        """The partition of a claim record's run, the record moved already or not (a
        step interrupted between the two, run again)."""
        run_id = await self.client.hget(f"{_P}claim:{node_run_id}", "run")
        if run_id is not None:
            return self.tag(_text(run_id))
        for tag in self.tags():
            if await self.client.exists(keys.claim(node_run_id, tag)):
                return tag
        return None

    async def timers(self) -> None:
        old, old_details = f"{_P}timers", f"{_P}timers:details"
        armed: Any = await self.client.zrange(old, 0, -1, withscores=True)
        if not armed:
            return
        details: Any = await self.client.hgetall(old_details)
        self.moved += 1
        if self.dry_run:
            return
        for member, score in armed:
            timer_id = _text(member)
            raw = details.get(member)
            if raw is None:
                continue  # never fired: the engine re-arms what its state needs
            tag = self.tag(orjson.loads(raw)["runId"])
            await self.client.zadd(keys.timers(tag), {timer_id: score})
            await self.client.hset(keys.timer_details(tag), timer_id, raw)
        await self.client.delete(old, old_details)

    async def singles(self) -> None:
        """The pending-outbox set, the in-flight counts, the strays' guards, and what is
        dropped (the all-runs event stream, the retention backfill's cursor)."""
        pending = [_text(m) for m in await self.client.smembers(f"{_P}outbox:pending")]
        counts = await self.client.hgetall(f"{_P}stats:node-runs-in-flight")
        self.moved += bool(pending) + bool(counts)
        if not self.dry_run:
            # One MULTI (layout 1 is on a single Redis): counts added, then interrupted
            # before the old hash went, would be added twice by the next run.
            async with self.client.pipeline(transaction=True) as pipe:
                for run_id in pending:
                    pipe.sadd(keys.outbox_pending(self.tag(run_id)), run_id)
                first = keys.node_runs_in_flight(partition_tag(0, self.partitions))
                for kind, count in counts.items():  # the gauge shows the partitions' sum
                    pipe.hincrby(first, _text(kind), int(count))
                pipe.delete(
                    f"{_P}outbox:pending", f"{_P}stats:node-runs-in-flight",
                    f"{_P}runs:events", keys.RETENTION_BACKFILL,
                )  # fmt: skip
                await pipe.execute()
        async for key in self.scan(f"{_P}inbox:strays:*", "hash"):
            rest = key[len(f"{_P}inbox:strays:") :]
            topic, _, partition = rest.rpartition(":")
            if rest.startswith("{") or not partition.isdigit():
                continue
            tag = partition_tag(int(partition), self.partitions)
            await self.rename(key, keys.strays(topic, tag))


def _per_partition(kind: str, rest: str) -> Callable[[str], str]:
    """Layout 2's name, in a partition, of layout 1's index ``sy:runs:<kind>:<rest>``."""
    return lambda tag: f"{_P}runs:{kind}:{tag}:{rest}"


async def to_partition_tags(
    client: aioredis.Redis, partitions: int, dry_run: bool, say: Say
) -> int:
    """Layout 1 → 2 for an inbox of ``partitions`` partitions; returns how many keys
    (or index sets) it moved (or, in a dry run, would)."""
    mover = _Mover(client, partitions, dry_run)
    for name, part in (
        ("runs", mover.runs), ("indexes", mover.indexes), ("node runs", mover.node_runs),
        ("external ids", mover.external_ids), ("claims", mover.claims),
        ("timers", mover.timers), ("the rest", mover.singles),
    ):  # fmt: skip
        await part()
        say(f"  {name}: {mover.moved} moved so far")
    return mover.moved
