"""Run state in Redis: load runs for a batch of events, apply plans, clear outboxes.

The processor is the only writer; the bridge reads through :meth:`RunStore.get` and
:meth:`RunStore.logs`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from switchyard.engine.machine.state import RunState, load_state
from switchyard.engine.store import keys, log_record
from switchyard.engine.store.calls import side_by_side
from switchyard.engine.store.org import AgentStreamer, streamer_of
from switchyard.engine.store.plan import ApplyPlan, OutboxMessage
from switchyard.engine.store.slots import partition_tag
from switchyard.engine.store.workflows import latest_of
from switchyard.schemas import NodeRunLog

# The inbox's partition count when nothing says otherwise (the settings' default).
DEFAULT_PARTITIONS = 12


def _lua(name: str) -> str:
    return resources.files("switchyard.engine.store").joinpath("lua", name).read_text()


@dataclass
class StoredRun:
    """A run as read from Redis: state, last applied inbox offset and the partition it
    is of (None for runs stored before partitions were recorded), unpublished outbox."""

    state: RunState
    offset: int
    outbox: dict[str, list[OutboxMessage]] = field(default_factory=dict)
    partition: int | None = None


class RunStore:
    """Reads and atomic writes of runs; shares the caller's Redis client.

    ``partitions`` is the inbox's partition count: a run's keys carry its partition's
    hash tag (``slots.py``), so every reader and writer must agree on it."""

    def __init__(self, client: aioredis.Redis, partitions: int = DEFAULT_PARTITIONS) -> None:
        self.client = client
        self.partitions = partitions
        self._apply = client.register_script(_lua("apply.lua"))
        self._clear = client.register_script(_lua("clear_outbox.lua"))
        # One Redis node takes a batch's partitions in one call; a Redis Cluster refuses
        # a call whose keys span slots, so there it is one call per partition.
        self.per_partition = isinstance(cast(object, client), RedisCluster)

    def _call_group(self, tag: str) -> str:
        """The script call a partition's plans go in: its own on a cluster, else one."""
        return tag if self.per_partition else ""

    async def load(self, run_ids: Iterable[str]) -> dict[str, StoredRun]:
        """The stored runs among ``run_ids`` (missing ones are left out), in one round trip."""
        return (await self.load_batch(run_ids)).runs

    async def load_batch(
        self,
        run_ids: Iterable[str],
        *,
        latest: Iterable[str] = (),
        org: bool = False,
    ) -> BatchLoad:
        """What a batch reads before deciding, in one round trip: the stored runs among
        ``run_ids``, the latest live version of each workflow in ``latest`` and, with
        ``org``, how the agent takes its work."""
        ids = list(dict.fromkeys(run_ids))
        workflows = list(dict.fromkeys(latest))
        async with self.client.pipeline(transaction=False) as pipe:
            for run_id in ids:
                tag = self.tag_of(run_id)
                pipe.hmget(keys.run(run_id, tag), ["state", "offset", "partition"])
                pipe.hgetall(keys.outbox(run_id, tag))
            for identifier in workflows:
                pipe.hmget(keys.workflow(identifier), ["version", "deleted"])
            if org:
                pipe.hget(keys.ORG, "settings")
            replies = await pipe.execute() if ids or workflows or org else []
        runs = 2 * len(ids)
        return BatchLoad(
            runs=_stored_runs(ids, replies[:runs]),
            latest=latest_of(workflows, replies[runs : runs + len(workflows)]),
            streamer=streamer_of(replies[-1]) if org else None,
        )

    def tag_of(self, run_id: str) -> str:
        return keys.tag_of(run_id, self.partitions)

    def tags(self) -> list[str]:
        """Every partition's tag, in partition order."""
        return [partition_tag(p, self.partitions) for p in range(self.partitions)]

    async def get(self, run_id: str) -> RunState | None:
        raw = await self.client.hget(keys.run(run_id, self.tag_of(run_id)), "state")
        return None if raw is None else load_state(raw)

    async def run_of_node_run(self, node_run_id: str) -> str | None:
        """The run of ``node_run_id``: its bucket is in its run's partition, which the id
        does not name, so every partition's is asked (one pipelined round trip; one per
        master on a cluster)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for tag in self.tags():
                pipe.hget(keys.node_runs_bucket(node_run_id, tag), node_run_id)
            replies = await pipe.execute()
        found = next((raw for raw in replies if raw is not None), None)
        return None if found is None else _text(found)

    async def node_run_of_external(self, external_run_id: str) -> str | None:
        """The node run a worker gave ``external_run_id`` (as the engine applied it): its
        key is in its run's partition, which the id does not name, so every partition's
        is asked in one pipelined round trip."""
        async with self.client.pipeline(transaction=False) as pipe:
            for tag in self.tags():
                pipe.get(keys.external_run(external_run_id, tag))
            replies = await pipe.execute()
        found = next((raw for raw in replies if raw is not None), None)
        return None if found is None else _text(found)

    async def logs(self, run_id: str, node_run_ids: Sequence[str]) -> dict[str, list[NodeRunLog]]:
        """The log lines of the given node runs of ``run_id``, in the order they came."""
        found: dict[str, list[NodeRunLog]] = {node_run_id: [] for node_run_id in node_run_ids}
        if not found:
            return found
        for raw in await self.client.lrange(keys.logs(run_id, self.tag_of(run_id)), 0, -1):
            node_run_id, line = log_record.unpack(raw)
            lines = found.get(node_run_id)
            if lines is not None:
                lines.append(NodeRunLog.model_validate(line))
        return found

    async def apply(self, plans: Sequence[ApplyPlan]) -> list[int]:
        """Run each plan's atomic step, in order. Per plan: 1 applied, 0 its offset was
        already applied from its partition (a redelivery), -1 refused because its guard
        records another partition (see ``apply.lua``).

        One script call for the batch (a call per plan cost more in round-trip
        bookkeeping than the plans themselves), or one per partition on a Redis Cluster,
        which refuses a call across slots; each plan still checks its own offset.
        """
        groups: dict[str, list[int]] = {}
        for index, plan in enumerate(plans):
            groups.setdefault(self._call_group(plan.tag), []).append(index)
        calls: list[tuple[list[int], list[str], list[bytes]]] = []
        for members in groups.values():
            names: dict[str, int] = {}
            args = [plans[i].script_argument(names) for i in members]
            calls.append((members, list(names), args))
        # Side by side, not in a pipeline: a cluster pipeline does not load scripts,
        # and each call goes to its own slot's master.
        replies = await side_by_side(
            self._apply(keys=names_, args=args) for _, names_, args in calls
        )
        flags = [0] * len(plans)
        for (members, _, _), reply in zip(calls, replies, strict=True):
            for index, flag in zip(members, reply, strict=True):
                flags[index] = int(flag)
        return flags

    async def clear_outbox(self, steps: Iterable[tuple[str, str, str]]) -> None:
        """Forget published outbox steps, given as ``(tag, run_id, step)`` (the tag of
        the partition that applied the step): one script call, or one per partition on
        a cluster."""
        by_group: dict[str, tuple[dict[str, int], list[str]]] = {}
        for tag, run_id, step in steps:
            names, args = by_group.setdefault(self._call_group(tag), ({}, []))
            outbox = names.setdefault(keys.outbox(run_id, tag), len(names) + 1)
            pending = names.setdefault(keys.outbox_pending(tag), len(names) + 1)
            args += [str(outbox), str(pending), run_id, step]
        # Side by side, like apply's calls.
        await side_by_side(
            self._clear(keys=list(names), args=args) for names, args in by_group.values()
        )

    async def pending_outboxes(
        self, tags: Iterable[str] | None = None
    ) -> dict[tuple[str, str], dict[str, list[OutboxMessage]]]:
        """Every unpublished outbox (after a crash) of the partitions ``tags`` (default:
        all), by (partition tag, run id) and step."""
        result: dict[tuple[str, str], dict[str, list[OutboxMessage]]] = {}
        for tag in self.tags() if tags is None else tags:
            pending = keys.outbox_pending(tag)
            for run_id in [_text(r) for r in await self.client.smembers(pending)]:
                outbox = await self.client.hgetall(keys.outbox(run_id, tag))
                if outbox:
                    steps = {_text(step): _messages(raw) for step, raw in outbox.items()}
                    result[(tag, run_id)] = steps
                else:
                    await self.client.srem(pending, run_id)
        return result


@dataclass
class BatchLoad:
    """A batch's reads (:meth:`RunStore.load_batch`)."""

    runs: dict[str, StoredRun]
    latest: dict[str, int]  # workflow identifier → its latest live version
    streamer: AgentStreamer | None  # None when not asked for


def _stored_runs(ids: Sequence[str], replies: Sequence[Any]) -> dict[str, StoredRun]:
    """The runs of ``ids`` from their HMGET and HGETALL replies (missing ones left out)."""
    found: dict[str, StoredRun] = {}
    for run_id, (state, offset, partition), outbox in zip(
        ids, replies[::2], replies[1::2], strict=True
    ):
        if state is None:
            continue
        found[run_id] = StoredRun(
            state=load_state(state),
            offset=int(offset) if offset is not None else -1,
            outbox={_text(step): _messages(raw) for step, raw in outbox.items()},
            partition=int(partition) if partition is not None else None,
        )
    return found


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _messages(raw: bytes | str) -> list[OutboxMessage]:
    return [OutboxMessage.from_json(item) for item in orjson.loads(raw)]
