"""Run state in Redis: load runs for a batch of events, apply plans, clear outboxes.

The processor is the only writer; the bridge reads through :meth:`RunStore.get` and
:meth:`RunStore.logs`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import orjson
import redis.asyncio as aioredis

from switchyard.engine.machine.state import RunState, load_state
from switchyard.engine.store import keys, log_record
from switchyard.engine.store.org import AgentStreamer, streamer_of
from switchyard.engine.store.plan import ApplyPlan, OutboxMessage
from switchyard.engine.store.workflows import latest_of
from switchyard.schemas import NodeRunLog


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
    """Reads and atomic writes of runs; shares the caller's Redis client."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._apply = client.register_script(_lua("apply.lua"))
        self._clear = client.register_script(_lua("clear_outbox.lua"))

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
                pipe.hmget(keys.run(run_id), ["state", "offset", "partition"])
                pipe.hgetall(keys.outbox(run_id))
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

    async def get(self, run_id: str) -> RunState | None:
        raw = await self.client.hget(keys.run(run_id), "state")
        return None if raw is None else load_state(raw)

    async def run_of_node_run(self, node_run_id: str) -> str | None:
        raw = await self.client.hget(keys.node_runs_bucket(node_run_id), node_run_id)
        return None if raw is None else _text(raw)

    async def logs(self, run_id: str, node_run_ids: Sequence[str]) -> dict[str, list[NodeRunLog]]:
        """The log lines of the given node runs of ``run_id``, in the order they came."""
        found: dict[str, list[NodeRunLog]] = {node_run_id: [] for node_run_id in node_run_ids}
        if not found:
            return found
        for raw in await self.client.lrange(keys.logs(run_id), 0, -1):
            node_run_id, line = log_record.unpack(raw)
            lines = found.get(node_run_id)
            if lines is not None:
                lines.append(NodeRunLog.model_validate(line))
        return found

    async def apply(self, plans: Sequence[ApplyPlan]) -> list[int]:
        """Run each plan's atomic step, in order. Per plan: 1 applied, 0 its offset was
        already applied from its partition (a redelivery), -1 refused because its guard
        records another partition (see ``apply.lua``).

        One script call for the whole batch (a call per plan cost more in round-trip
        bookkeeping than the plans themselves); each plan still checks its own offset.
        """
        if not plans:
            return []
        replies = await self._apply(args=[plan.script_argument() for plan in plans])
        return [int(reply) for reply in replies]

    async def clear_outbox(self, steps: Iterable[tuple[str, str]]) -> None:
        """Forget published outbox steps, given as ``(run_id, step)``, in one script call."""
        args = _clear_args(steps)
        if args:
            await self._clear(keys=[keys.OUTBOX_PENDING], args=args)

    async def pending_outboxes(self) -> dict[str, dict[str, list[OutboxMessage]]]:
        """Every unpublished outbox (after a crash), by run id and step."""
        run_ids = [_text(r) for r in await self.client.smembers(keys.OUTBOX_PENDING)]
        result: dict[str, dict[str, list[OutboxMessage]]] = {}
        for run_id in run_ids:
            outbox = await self.client.hgetall(keys.outbox(run_id))
            if outbox:
                result[run_id] = {_text(step): _messages(raw) for step, raw in outbox.items()}
            else:
                await self.client.srem(keys.OUTBOX_PENDING, run_id)
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


def _clear_args(steps: Iterable[tuple[str, str]]) -> list[str]:
    return [item for run_id, step in steps for item in (keys.outbox(run_id), run_id, step)]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _messages(raw: bytes | str) -> list[OutboxMessage]:
    return [OutboxMessage.from_json(item) for item in orjson.loads(raw)]
