"""Retention of finished runs: runs finished longer than ``run_retention_days`` ago are
deleted with everything that is theirs; runs inside the window, running and
waiting runs stay; retention 0 keeps everything; the counters count exactly what
went; two pruners at once delete each run once; the bridge then answers 404.

Runs are written through the real engine (its processor, in-process) with a clock in
1999, on this session's private Redis database: the pruner's cutoff is then in 1999
too, so it can't reach another session's runs, which all finished long after.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY
from pydantic import SecretStr

from switchyard.bridge.app import create_app
from switchyard.bridge.credentials import hash_secret
from switchyard.engine.processor import InboxProcessor, InboxRecord
from switchyard.engine.retention import KINDS, PruneCounts, RunPruner
from switchyard.engine.store import keys
from switchyard.engine.store.prune import PruneStore, prune_plan
from switchyard.engine.store.runs import RunStore
from switchyard.engine.store.workflows import WorkflowStore
from switchyard.schemas import (
    NodeRunUpdated,
    RunCommand,
    RunTriggered,
    encode,
    node_run_id,
    parse_workflow,
)
from switchyard.schemas.settings import Settings
from switchyard.topics.partitioning import partition_of
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from tests.bridge.support import SECRET, TOKEN_SECRET, Api
from tests.helpers import private_redis_db, until
from tests.integration.engine_support import new_run_id

pytestmark = pytest.mark.integration

T0 = datetime(1999, 3, 1, 12, 0, 0, tzinfo=UTC)
RETENTION = timedelta(days=30)
NOW = T0 + RETENTION + timedelta(seconds=1)  # A finished at T0: 1 s past the retention
CREATOR = "retention-tests@example.com"


@pytest.fixture
def settings(settings: Settings, session_tag: str) -> Settings:
    private = private_redis_db(settings, session_tag)
    return private.model_copy(update={"run_retention_days": RETENTION / timedelta(days=1)})


class Engine:
    """The engine's processor on a clock the test sets, fed records by hand."""

    def __init__(
        self, settings: Settings, redis: aioredis.Redis, producer: EventProducer, templates: Any
    ) -> None:
        self.now = T0
        self.settings = settings
        self.registry = TopicRegistry.from_settings(settings)
        self.processor = InboxProcessor(
            store=RunStore(redis), workflows=WorkflowStore(redis), producer=producer,
            registry=self.registry, templates=templates, secrets={}, clock=lambda: self.now,
            inbox_partitions=settings.inbox_partitions,
        )  # fmt: skip
        self.offsets: dict[str, int] = {}

    async def send(self, run_id: str, at: datetime, event: Any) -> None:
        self.now = at
        offset = self.offsets[run_id] = self.offsets.get(run_id, 0) + 1
        home = partition_of(run_id, self.settings.inbox_partitions)
        record = InboxRecord(self.registry.inbox.name, home, offset, run_id.encode(), encode(event))
        await self.processor.handle([record])

    async def trigger(self, workflow: str, at: datetime, service: str) -> str:
        run_id = new_run_id()
        event = RunTriggered.model_validate({
            "runId": run_id, "workflowIdentifier": workflow, "inputs": {"service": service},
            "createdBy": CREATOR, "triggeredAt": at,
        })  # fmt: skip
        await self.send(run_id, at, event)
        return run_id

    async def complete(self, run_id: str, at: datetime) -> None:
        event = NodeRunUpdated.model_validate({
            "runId": run_id, "nodeRunId": node_run_id(run_id, "work"), "status": "COMPLETED",
            "result": "SUCCESS", "output": {"ok": True}, "externalRunId": f"ext-{run_id}",
            "logs": [{"logLevel": "INFO", "log": "one"}, {"logLevel": "INFO", "log": "two"}],
            "sentAt": at,
        })  # fmt: skip
        await self.send(run_id, at, event)

    async def cancel(self, run_id: str, at: datetime) -> None:
        event = RunCommand(run_id=run_id, command="cancel", by=CREATOR)
        await self.send(run_id, at, event)


TRIGGER = {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {
    "properties": {"service": {"type": "string", "format": "entity", "blueprint": "service"}},
}}}  # fmt: skip
APPROVAL = {"type": "INPUT", "userInputs": {"properties": {}, "buttons": [
    {"identifier": "ok", "label": "OK"}]}, "outlets": [{"identifier": "ok"}],
    "responders": {"users": [CREATOR]}}  # fmt: skip


async def _define(redis: aioredis.Redis, second: dict[str, Any]) -> str:
    identifier = f"retention-{uuid.uuid4().hex[:8]}"
    await WorkflowStore(redis).save(parse_workflow({
        "identifier": identifier,
        "nodes": [TRIGGER, {"identifier": "work", "config": second}],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}],
    }), create=True, now=T0)  # fmt: skip
    return identifier


@pytest.fixture
async def workflow(redis: aioredis.Redis) -> str:
    """trigger (an entity input) → work (KAFKA)."""
    return await _define(redis, {"type": "KAFKA", "payload": {"n": 1}})


@pytest.fixture
async def approval(redis: aioredis.Redis) -> str:
    """trigger (an entity input) → work (INPUT: waits for an answer)."""
    return await _define(redis, APPROVAL)


Place = tuple[str, str, str]  # how to read it, the key, the field or member


def _run_keys(run_id: str, tag: str, workflow: str, service: str) -> dict[str, Place]:
    """Every place run ``run_id`` (of partition tag ``tag``) is held, by name."""
    found = {
        "hash": ("exists", keys.run(run_id, tag), ""),
        "logs": ("exists", keys.logs(run_id, tag), ""),
        "events": ("exists", keys.run_events(run_id, tag), ""),
        "external": ("exists", keys.external_run(f"ext-{run_id}", tag), ""),
    }
    for node in ("trigger", "work"):
        nr = node_run_id(run_id, node)
        found[f"node run {node}"] = ("hget", keys.node_runs_bucket(nr, tag), nr)
    indexes = [
        keys.runs_all(tag), keys.runs_finished(tag), keys.runs_of_workflow(workflow, tag),
        keys.runs_of_version(1, tag), keys.runs_by(CREATOR, tag),
        keys.runs_with_status("COMPLETED", tag), keys.runs_with_result("SUCCESS", tag),
        keys.runs_of_entity("service", service, tag),
    ]  # fmt: skip
    found.update({index: ("zscore", index, run_id) for index in indexes})
    return found


async def _held(redis: aioredis.Redis, places: dict[str, Place]) -> set[str]:
    """The names of ``places`` that still hold what they held of the run."""
    held = set()
    for name, (read, key, member) in places.items():
        if read == "exists":
            present = bool(await redis.exists(key))
        elif read == "hget":
            present = await redis.hget(key, member) is not None
        else:
            present = await redis.zscore(key, member) is not None
        if present:
            held.add(name)
    return held


async def _keys_naming(redis: aioredis.Redis, run_id: str) -> list[Any]:
    """Every key of this database whose name holds ``run_id``, under any tag."""
    return [key async for key in redis.scan_iter(match=f"*{run_id}*", count=1000)]


def _pruned(kind: str) -> float:
    value = REGISTRY.get_sample_value("switchyard_retention_pruned_total", {"kind": kind})
    return value or 0.0


async def test_runs_finished_before_the_retention_go_with_all_they_hold_and_no_others_do(
    settings: Settings,
    redis: aioredis.Redis,
    producer: EventProducer,
    templates: Any,
    workflow: str,
    approval: str,
) -> None:
    # Runs an earlier session of these tests left in this database (dated 1999 too) go
    # first, so that what follows counts this test's runs alone.
    while (await RunPruner(settings, redis).prune_batch(NOW)).runs:
        pass
    engine = Engine(settings, redis, producer, templates)

    def tag(run_id: str) -> str:
        return keys.tag_of(run_id, settings.inbox_partitions)

    services = {name: f"svc-{name}-{uuid.uuid4().hex[:6]}" for name in "ABECD"}
    old = await engine.trigger(workflow, T0 - timedelta(minutes=5), services["A"])
    await engine.complete(old, T0)
    # Finished as long ago, but by an engine from before sy:runs:finished: backfilled.
    unindexed = await engine.trigger(workflow, T0 - timedelta(minutes=4), services["B"])
    await engine.complete(unindexed, T0 - timedelta(minutes=1))
    await redis.zrem(keys.runs_finished(tag(unindexed)), unindexed)
    await redis.delete(keys.RETENTION_BACKFILL)  # walk this database's COMPLETED runs anew
    recent = await engine.trigger(workflow, T0 - timedelta(minutes=3), services["E"])
    await engine.complete(recent, T0 + timedelta(seconds=2))  # 1 s inside the window
    running = await engine.trigger(workflow, T0 - timedelta(days=90), services["C"])
    waiting = await engine.trigger(approval, T0 - timedelta(days=90), services["D"])
    runs = {"A": old, "B": unindexed, "E": recent, "C": running, "D": waiting}
    places = {
        run_id: _run_keys(
            run_id, tag(run_id), approval if name == "D" else workflow, services[name]
        )
        for name, run_id in runs.items()
    }
    lines = sum([await redis.llen(keys.logs(r, tag(r))) for r in (old, unindexed)])
    kept = {r: await redis.hget(keys.run(r, tag(r)), "state") for r in (recent, running, waiting)}
    kept_held = {r: await _held(redis, places[r]) for r in kept}
    assert kept_held[recent] == set(places[recent])

    # Retention 0 keeps runs forever, however old.
    forever = settings.model_copy(update={"run_retention_days": 0})
    nothing = await RunPruner(forever, redis).prune_batch(NOW + timedelta(days=3650))
    assert nothing == PruneCounts()
    assert await _held(redis, places[old]) == set(places[old])
    unindexed_finished = keys.runs_finished(tag(unindexed))
    assert await _held(redis, places[unindexed]) == set(places[unindexed]) - {unindexed_finished}

    before = {kind: _pruned(kind) for kind in KINDS}
    first, second = RunPruner(settings, redis), RunPruner(settings, redis)
    one, two = await asyncio.gather(first.prune_batch(NOW), second.prune_batch(NOW))

    assert one.runs + two.runs == 2  # each run deleted once, by one of the two
    assert await _held(redis, places[old]) == set()
    assert await _held(redis, places[unindexed]) == set()
    # Nor under any other partition's tag (nor any key naming the run or its node runs).
    assert await _keys_naming(redis, old) == await _keys_naming(redis, unindexed) == []
    for run_id, state in kept.items():
        assert await redis.hget(keys.run(run_id, tag(run_id)), "state") == state
        assert await _held(redis, places[run_id]) == kept_held[run_id]
    total = PruneCounts()
    total.add(one)
    total.add(two)
    assert total.node_runs == 4  # trigger and work of each
    assert total.log_entries == lines > 0
    moved = {kind: _pruned(kind) - before[kind] for kind in KINDS}
    assert moved == {kind: getattr(total, kind) for kind in KINDS}
    assert moved["runs"] == 2
    again = await first.prune_batch(NOW)
    assert (again.runs, again.changed) == (0, 0)


async def test_a_run_that_changed_after_the_pruner_read_it_is_left_for_the_next_pass(
    settings: Settings,
    redis: aioredis.Redis,
    producer: EventProducer,
    templates: Any,
    workflow: str,
) -> None:
    engine = Engine(settings, redis, producer, templates)
    run_id = await engine.trigger(workflow, T0, f"svc-{uuid.uuid4().hex[:6]}")
    await engine.complete(run_id, T0)
    partitions = settings.inbox_partitions
    tag = keys.tag_of(run_id, partitions)
    [raw] = await PruneStore(redis, partitions).states([run_id])
    state = await RunStore(redis, partitions).get(run_id)
    assert raw is not None
    assert state is not None
    plan = prune_plan(state, raw, [], tag)
    # A re-run command applied meanwhile rewrites the old run's state (it stays COMPLETED;
    # the re-run is a run of its own).
    changed = orjson.loads(raw) | {"step": state.step + 1}
    await redis.hset(keys.run(run_id, tag), "state", orjson.dumps(changed))

    [result] = await PruneStore(redis, partitions).prune([plan])

    assert result.outcome == 0
    assert await redis.exists(keys.run(run_id, tag))
    assert await redis.zscore(keys.runs_finished(tag), run_id) is not None


async def test_the_background_pruner_deletes_old_runs_and_stops(
    settings: Settings,
    redis: aioredis.Redis,
    producer: EventProducer,
    templates: Any,
    workflow: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = Engine(settings, redis, producer, templates)
    run_id = await engine.trigger(workflow, T0, f"svc-{uuid.uuid4().hex[:6]}")
    await engine.complete(run_id, T0)
    caplog.set_level(logging.INFO, "switchyard.retention")

    pruner = RunPruner(settings, redis, clock=lambda: NOW, first_delay_s=0, interval_s=0.2)
    async with pruner:
        run_key = keys.run(run_id, keys.tag_of(run_id, settings.inbox_partitions))
        await until(lambda: redis.exists(run_key), lambda found: not found, within=30)
    await pruner.stop()  # idempotent

    assert pruner.total.runs >= 1
    assert any("retention: pruned" in r.getMessage() for r in caplog.records)
    with pytest.raises(RuntimeError, match="twice"):
        await pruner.start()


@pytest.fixture
async def api(settings: Settings, tmp_path: Path) -> AsyncIterator[Api]:
    auth = tmp_path / "auth.json"
    admin = {"email": "admin@example.com", "role": "Admin", "teams": [], "clientId": "admin",
             "clientSecretHash": hash_secret(SECRET)}  # fmt: skip
    auth.write_bytes(orjson.dumps({"users": [admin], "machines": []}))
    app = create_app(settings.model_copy(
        update={"auth_file": auth, "token_secret": SecretStr(TOKEN_SECRET)}
    ))  # fmt: skip
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
            yield Api(client, app)


async def test_the_bridge_answers_404_for_a_pruned_run(
    settings: Settings,
    redis: aioredis.Redis,
    producer: EventProducer,
    templates: Any,
    workflow: str,
    api: Api,
) -> None:
    engine = Engine(settings, redis, producer, templates)
    run_id = await engine.trigger(workflow, T0, f"svc-{uuid.uuid4().hex[:6]}")
    await engine.complete(run_id, T0)
    assert (await api.run(run_id))["status"] == "COMPLETED"

    await RunPruner(settings, redis).prune_batch(NOW)

    response = await api.call("GET", f"/v1/workflows/runs/{run_id}")
    assert response.status_code == 404, response.text
