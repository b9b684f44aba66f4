"""The key-layout step 1 → 2 (``engine/store/partition_layout.py``) against real Redis.

A layout-1 store is written by hand, with runs in every state a release left: one
finished (its indexes, the retention pruner's set, an events list with its TTL), one
in flight with an outbox leftover, armed timers and a pending claim, one with an
acknowledged claim and an external id; entity and result indexes, an inbox
partition's strays guard, the all-runs event stream, the pruner's backfill cursor and
in-flight counts. The upgrade must move every part of it to layout 2's names
(``tests/integration/layout_1.py``), leave no layout-1 key, let the stores find what
they look up, move nothing a second time, and finish the job when run again after
being interrupted. (The in-place test, ``test_upgrade_in_place.py``, upgrades what a
release really wrote, then runs it to completion.)

The tests run on the session's own database, marked as an older release's store for
the step, and put back whatever marker they found.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from switchyard.engine.store import keys
from switchyard.engine.store.claims import ClaimStore
from switchyard.engine.store.plan import OutboxMessage
from switchyard.engine.store.prune import PruneStore
from switchyard.engine.store.runs import RunStore
from switchyard.engine.store.slots import partition_tag
from switchyard.engine.store.upgrade import CODE_FORMAT, UpgradeReport, upgrade_store
from switchyard.schemas.settings import Settings
from tests.helpers import keeping_meta, private_redis_db
from tests.integration import layout_1
from tests.integration.layout_1 import Entry

pytestmark = pytest.mark.integration

P = 12  # the inbox's partitions (the default: engines of other tests share the database)


@pytest.fixture
async def client(settings: Settings, session_tag: str) -> AsyncIterator[aioredis.Redis]:
    """The session's database, its marker put back as it was after the test."""
    async with keeping_meta(private_redis_db(settings, session_tag).redis_url) as redis:
        yield redis


def _t(text: str) -> dict[str, str]:
    return {"t": text}


def _whole(kind: str, content: Any, **extra: Any) -> Entry:
    return {"type": kind, "whole": True, "value": content, **extra}


def _shared(kind: str, content: Any) -> Entry:
    """Members of a key other runs share (an index, a bucket, the timers)."""
    return {"type": kind, "whole": False, "value": content}


def _hash(fields: dict[str, str]) -> list[list[dict[str, str]]]:
    return [[_t(f), _t(v)] for f, v in fields.items()]


def _zset(members: dict[str, float]) -> list[list[Any]]:
    return [[_t(m), score] for m, score in members.items()]


class Store:
    """A layout-1 store's entries, with ids of this test's own."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex
        self.tag = tag[:8]
        self.finished, self.waiting, self.acked = (f"wfr_pl{tag[:8]}{n:06d}" for n in range(3))
        self.nr_finished, self.nr_waiting, self.nr_acked = (
            f"wfnr_{n}{tag[8:23]}" for n in "abc"
        )  # node run ids: their buckets are chars 5-7
        self.installation = f"inst-pl-{self.tag}"
        self.external = f"ext-pl-{self.tag}"
        self.workflow = f"wf-pl-{self.tag}"
        self.topic = f"test-pl-{self.tag}.inbox"
        self.message = OutboxMessage(topic=f"test-pl-{self.tag}.requests", key="k", value=b"v")

    def run(self, run_id: str, status: str) -> dict[str, Entry]:
        """A run's own keys: its hash (a state the step moves as it is) and its logs."""
        state = orjson.dumps({"run_id": run_id, "status": status}).decode()
        return {
            f"sy:run:{{{run_id}}}": _whole("hash", _hash({"state": state, "offset": "3"})),
            f"sy:run:{{{run_id}}}:logs": _whole("list", [_t(f'{{"n":"{run_id}"}}')]),
        }

    def entries(self) -> dict[str, Entry]:
        finished, waiting, acked = self.finished, self.waiting, self.acked
        created = {finished: 1000.0, waiting: 2000.0, acked: 3000.0}
        timer = f"{self.nr_waiting}:node_timeout"
        return {
            **self.run(finished, "COMPLETED"), **self.run(waiting, "IN_PROGRESS"),
            **self.run(acked, "IN_PROGRESS"),
            # Finished: its event list expires after run.completed; the pruner's set.
            f"sy:run:{{{finished}}}:events": _whole("list", [_t("[1]"), _t("[2]")],
                                                    pttl=600_000),
            "sy:runs:finished": _shared("zset", _zset({finished: 1.0})),
            "sy:runs:status:COMPLETED": _shared("zset", _zset({finished: 1000.0})),
            "sy:runs:result:SUCCESS": _shared("zset", _zset({finished: 1000.0})),
            # Every run's indexes.
            "sy:runs:all": _shared("zset", _zset(created)),
            f"sy:runs:wf:{self.workflow}": _whole("zset", _zset(created)),
            "sy:runs:version:1": _shared("zset", _zset(created)),
            f"sy:runs:by:{self.tag}@example.com": _whole("zset", _zset(created)),
            "sy:runs:status:IN_PROGRESS": _shared("zset", _zset({waiting: 2000.0, acked: 3000.0})),
            f"sy:runs:entity:bp-{self.tag}/e1": _whole("zset", _zset({finished: 1000.0})),
            # The node runs, bucketed by their id's characters 5-7.
            **{f"sy:nr:{nr[5:7]}": _shared("hash", _hash({nr: run})) for nr, run in (
                (self.nr_finished, finished), (self.nr_waiting, waiting),
                (self.nr_acked, acked))},
            # In flight: an outbox leftover (not yet published), its pending entry.
            f"sy:run:{{{waiting}}}:outbox": _whole("hash", _hash({
                "5": orjson.dumps([self.message.to_json()]).decode()})),
            "sy:outbox:pending": _shared("set", [_t(waiting)]),
            # Armed deadlines.
            "sy:timers": _shared("zset", _zset({timer: 9e12, f"{waiting}:run_timeout": 9e12})),
            "sy:timers:details": _shared("hash", _hash({
                timer: orjson.dumps({"runId": waiting, "nodeRunId": self.nr_waiting}).decode(),
                f"{waiting}:run_timeout": orjson.dumps({"runId": waiting}).decode()})),
            # A pending claim, and an acknowledged one (its record only).
            f"sy:claims:{self.installation}": _whole("zset", _zset({self.nr_waiting: 5.0})),
            f"sy:claim:{self.nr_waiting}": _whole("hash", _hash({
                "run": waiting, "installation": self.installation, "config": "{}"})),
            f"sy:claim:{self.nr_acked}": _whole("hash", _hash({
                "run": acked, "installation": self.installation, "config": "{}",
                "acked": "1"})),
            # The node run a worker gave an external id.
            f"sy:ext:{self.external}": _whole("string", _t(self.nr_acked)),
            # Inbox partition 3's strays guard.
            f"sy:inbox:strays:{self.topic}:3": _whole("hash", _hash({"offset": "41",
                                                                     "partition": "3"})),
            # Dropped by the step.
            "sy:runs:events": _shared("stream", [["0-1", _hash({"r": finished, "e": "[]"})]]),
            keys.RETENTION_BACKFILL: _whole("string", _t("1000")),
        }  # fmt: skip


async def _write(client: aioredis.Redis, store: Store, entries: dict[str, Entry]) -> None:
    """The layout-1 store (an earlier test's moved copy removed), marked as such."""
    await layout_1.forget_moved(client, P, entries)
    for key, entry in entries.items():
        await layout_1.write_entry(client, key, entry)
    await client.hincrby("sy:stats:node-runs-in-flight", "KAFKA", 2)
    await client.hset(keys.META, items=["state_format", 1, "key_layout", 1])


async def _upgrade(client: aioredis.Redis, store: Store, dry_run: bool) -> UpgradeReport:
    return await upgrade_store(
        client, dry_run=dry_run, say=lambda _: None, partitions=P, runs=f"wfr_pl{store.tag}*"
    )


async def _in_flight(client: aioredis.Redis) -> int:
    """The KAFKA count the gauge shows: the partitions' (and layout 1's) sum."""
    names = [keys.node_runs_in_flight(partition_tag(p, P)) for p in range(P)]
    counts = [await client.hget(name, "KAFKA") for name in [*names, "sy:stats:node-runs-in-flight"]]
    return sum(int(c) for c in counts if c is not None)


async def _cleanup(client: aioredis.Redis, entries: dict[str, Entry]) -> None:
    await layout_1.forget_moved(client, P, entries)
    await client.hincrby(keys.node_runs_in_flight(partition_tag(0, P)), "KAFKA", -2)


async def test_a_layout_1_store_with_runs_in_every_state_moves_completely_once(
    client: aioredis.Redis,
) -> None:
    store = Store()
    entries = store.entries()
    counted = await _in_flight(client)
    await _write(client, store, entries)
    not_moved = await layout_1.check_moved(client, P, entries)
    assert len(not_moved) > len(entries)  # every key, index member, timer... (not yet)

    dry = await _upgrade(client, store, dry_run=True)
    assert dry.keys_moved > 0
    assert await layout_1.check_moved(client, P, entries) == not_moved  # a dry run moves nothing
    assert await client.hget(keys.META, "key_layout") == b"1"

    done = await _upgrade(client, store, dry_run=False)
    assert done.keys_moved == dry.keys_moved  # the dry run counted what the upgrade moved
    assert (done.before.key_layout, done.after) == (1, CODE_FORMAT)
    assert await layout_1.check_moved(client, P, entries) == []
    assert await layout_1.layout_1_keys(client) == []
    assert await _in_flight(client) == counted + 2
    assert await client.hget(keys.META, "partitions") == str(P).encode()

    # What the engine, the bridge and the pruner look up is found in layout 2.
    runs, claims = RunStore(client, P), ClaimStore(client, P)
    assert await runs.run_of_node_run(store.nr_waiting) == store.waiting
    assert await runs.node_run_of_external(store.external) == store.nr_acked
    outboxes = await runs.pending_outboxes()
    assert outboxes[(keys.tag_of(store.waiting, P), store.waiting)] == {"5": [store.message]}
    assert await claims.owner(store.nr_waiting) == store.waiting
    assert await claims.owner(store.nr_acked) == store.acked
    assert store.finished in await PruneStore(client, P).due(cutoff_ms=1, limit=100)

    again = await _upgrade(client, store, dry_run=False)
    assert again.keys_moved == 0  # layout 2 already: the step is not taken
    assert await layout_1.check_moved(client, P, entries) == []
    await _cleanup(client, entries)


async def test_an_interrupted_upgrade_finishes_the_job_when_run_again(
    client: aioredis.Redis,
) -> None:
    """Stopped half-way (Ctrl-C, a lost connection), the step is run again: what it had
    moved stays, what it had not is moved, nothing is lost or counted twice."""
    store = Store()
    entries = store.entries()
    counted = await _in_flight(client)
    await _write(client, store, entries)
    # Interrupted after moving a run's hash (not yet its logs and outbox), a claim
    # record (not yet its pending entry) and the all-runs index.
    waiting = keys.tag_of(store.waiting, P)
    await client.rename(f"sy:run:{{{store.waiting}}}", keys.run(store.waiting, waiting))
    await client.rename(f"sy:claim:{store.nr_waiting}", keys.claim(store.nr_waiting, waiting))
    for member, score in entries["sy:runs:all"]["value"]:
        run_id = layout_1.value(member).decode()
        await client.zadd(keys.runs_all(keys.tag_of(run_id, P)), {run_id: score})
    await client.zrem(
        "sy:runs:all", *[layout_1.value(m) for m, _ in entries["sy:runs:all"]["value"]]
    )

    await _upgrade(client, store, dry_run=False)
    assert await layout_1.check_moved(client, P, entries) == []
    assert await layout_1.layout_1_keys(client) == []
    assert await _in_flight(client) == counted + 2
    assert await ClaimStore(client, P).owner(store.nr_waiting) == store.waiting
    await _cleanup(client, entries)
