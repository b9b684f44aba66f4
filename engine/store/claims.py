"""Pending claims of node runs in Redis: claim, ack and the owner lookup of a PATCH,
one round trip each.

The engine's apply step arms a claim: ``sy:claim:<node run>`` (``run``,
``installation``, ``config``, ``uid``) and the node run in ``sy:claims:<installation>``
at score 0 (visible now). ``claim.lua`` reads the due members a page at a time
(``ZRANGEBYSCORE ... LIMIT``), so a claim costs O(log N + limit) however many are
pending, and returns what a claim item is made of: the record's fields and either its
``view`` (the node run as the API shows it, :func:`node_run_view`, when the record
has one) or, once per run, the run's stored state to make the view from. No run is
projected and no log is read to answer a claim.

A record exists from the moment its node run is armed until the apply step that ends
it deletes it (with the state change, atomically), so while it exists its node run is
an open INTEGRATION_ACTION (or agent WEBHOOK) node run of ``run``: a PATCH needs
nothing more (:meth:`ClaimStore.owner`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import orjson
import redis.asyncio as aioredis

from switchyard.engine.machine.projection import _node_run
from switchyard.engine.machine.state import NodeRunState
from switchyard.engine.store import keys
from switchyard.engine.store.calls import side_by_side
from switchyard.engine.store.slots import partition_tag
from switchyard.schemas import Workflow, node_uid

# A claim reads at most this many due members per item it may return: enough to pass
# over what the caller excludes (nodeUids of saturated buffers, spread among the rest
# by id) without ever walking all that is pending.
READS_PER_ITEM = 16
MIN_READS = 1000

AckOutcome = Literal["acked", "unknown", "already_acked"]
_ACK_OUTCOMES: dict[int, AckOutcome] = {1: "acked", 0: "unknown", -1: "already_acked"}

# KEYS[1] sy:claim:<node run>, KEYS[2] sy:claims:<installation>. ARGV: uid, node run
# id, a score to hand the node run back at ('' to keep it claimed). A record the engine
# removed meanwhile (the node run ended) is not brought back.
_REMEMBER = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'uid', ARGV[1])
if ARGV[3] ~= '' then redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[2]) end
return 1
"""


def _lua(name: str) -> str:
    return resources.files("switchyard.engine.store").joinpath("lua", name).read_text()


_CLAIM = _lua("claim.lua")
_ACK = _lua("claim_ack.lua")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class ClaimedRecord:
    """One claimed node run's record; ``uid`` None when the engine stored none."""

    node_run_id: str
    run_id: str
    config: Any
    uid: str | None
    view: dict[str, Any] | None
    tag: str = ""  # its run's partition's hash tag: where the record lives


@dataclass(frozen=True)
class ClaimBatch:
    """What one claim took: the records, and the stored states (raw, by run id) of the
    runs whose records carry no view."""

    records: list[ClaimedRecord]
    states: dict[str, bytes]


@dataclass(frozen=True)
class Learned:
    """A record's uid found by the bridge; ``hand_back`` makes it visible again."""

    node_run_id: str
    uid: str
    hand_back: bool
    tag: str = ""  # as the claimed record's


def node_run_view(node_run: NodeRunState, workflow: Workflow) -> dict[str, Any]:
    """A claim item's fixed part: the node run as the runs API shows it (without its
    logs: read them from the run) and its ``nodeUid``. What a claimable node run shows
    is fixed while it is pending, so the engine may store it with the record."""
    view: dict[str, Any] = _node_run(node_run, [], workflow).model_dump(mode="json", by_alias=True)
    view["nodeUid"] = node_uid(workflow.identifier, node_run.node)
    return view


def _records(flat: Sequence[Any], tag: str) -> list[ClaimedRecord]:
    records = []
    for i in range(0, len(flat), 5):
        node_run_id, run_id, config, uid, view = flat[i : i + 5]
        records.append(
            ClaimedRecord(
                node_run_id=_text(node_run_id),
                run_id=_text(run_id),
                config=orjson.loads(config),
                uid=_text(uid) or None,
                view=orjson.loads(view) if view else None,
                tag=tag,
            )
        )
    return records


class ClaimStore:
    """Claims, acks and owner lookups; shares the caller's Redis client."""

    def __init__(self, client: aioredis.Redis, partitions: int) -> None:
        self.client = client
        self.tags = [partition_tag(p, partitions) for p in range(partitions)]
        self._turn = 0  # the partition the next claim starts at: each gets its turn
        self._claim = client.register_script(_CLAIM)
        self._ack = client.register_script(_ACK)
        self._remember = client.register_script(_REMEMBER)

    async def claim(
        self,
        installation_id: str,
        *,
        now_ms: int,
        limit: int,
        visibility_ms: int,
        exclude: Sequence[str] = (),
    ) -> ClaimBatch:
        """Up to ``limit`` node runs visible at ``now_ms``, hidden until now + visibility.

        Each inbox partition keeps its own pending set (in its runs' slot): one
        pipelined peek finds the ones with something due, then those are claimed from
        in turn, starting one further each call, until ``limit`` are taken."""
        self._turn = (self._turn + 1) % len(self.tags)
        order = self.tags[self._turn :] + self.tags[: self._turn]
        async with self.client.pipeline(transaction=False) as pipe:
            for tag in order:
                pipe.zrangebyscore(keys.claims(installation_id, tag), "-inf", now_ms,
                                   start=0, num=1)  # fmt: skip
            peeks = await pipe.execute()
        batch = ClaimBatch([], {})
        for tag, peek in zip(order, peeks, strict=True):
            wanted = limit - len(batch.records)
            if wanted <= 0:
                break
            if peek:
                taken = await self._claim_in(tag, installation_id, now_ms, wanted,
                                             visibility_ms, exclude)  # fmt: skip
                batch.records.extend(taken.records)
                batch.states.update(taken.states)
        return batch

    async def _claim_in(
        self,
        tag: str,
        installation_id: str,
        now_ms: int,
        limit: int,
        visibility_ms: int,
        exclude: Sequence[str],
    ) -> ClaimBatch:
        reads = max(limit * READS_PER_ITEM, MIN_READS)
        before, after = keys.run("\0", tag).split("\0")  # around a run id in its key
        args: list[str | int] = [now_ms, limit, visibility_ms, keys.claim("", tag), before, after]
        args += [reads, *exclude]
        items, states = await self._claim(keys=[keys.claims(installation_id, tag)], args=args)
        found = {_text(states[i]): states[i + 1] for i in range(0, len(states), 2)}
        return ClaimBatch(_records(items, tag), found)

    async def remember(self, installation_id: str, learned: Sequence[Learned], now_ms: int) -> None:
        """Stores uids the bridge found, handing back the node runs whose uid is excluded."""
        if not learned:
            return
        await side_by_side(  # a cluster pipeline loads no scripts
            self._remember(
                keys=[keys.claim(one.node_run_id, one.tag), keys.claims(installation_id, one.tag)],
                args=[one.uid, one.node_run_id, str(now_ms) if one.hand_back else ""],
            )
            for one in learned
        )  # fmt: skip

    async def ack(self, node_run_id: str) -> tuple[AckOutcome, str]:
        """The outcome and the installation the node run was pending for ('' unknown)."""
        found = await self._find(node_run_id)
        if found is None:
            return "unknown", ""
        tag, _ = found
        result, installation = await self._ack(
            keys=[keys.claim(node_run_id, tag)], args=[node_run_id, keys.claims("", tag)]
        )
        return _ACK_OUTCOMES[int(result)], _text(installation)

    async def owner(self, node_run_id: str) -> str | None:
        """The run of an open claimed (or claimable) node run; None when it has no claim
        record (not a claim node run, ended, or unknown)."""
        found = await self._find(node_run_id)
        return None if found is None else found[1]

    async def _find(self, node_run_id: str) -> tuple[str, str] | None:
        """The tag and run of ``node_run_id``'s claim record. The id does not name its
        run's partition, so every partition is asked, in one pipelined round trip (one
        per master on a cluster)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for tag in self.tags:
                pipe.hget(keys.claim(node_run_id, tag), "run")
            replies = await pipe.execute()
        return next(((t, _text(r)) for t, r in zip(self.tags, replies, strict=True) if r), None)
