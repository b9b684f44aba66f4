"""Event triggers end to end: an entity change → its run started and completed.

    python -m benchmarks.triggers [--rate 50] [--seconds 20] [--redis-db 14]

against running Kafka and Redis (``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL``, else
the settings' defaults: ``switchyard stack up --infra-only``), on topics of its own and
in Redis database ``--redis-db``: the trigger matcher reads every workflow of its
database, and a live stack's must not meet this benchmark's. The engine, the executor
(which runs UPSERT_ENTITY nodes) and the trigger matcher run as real processes with
default settings; this process writes the entities through the entity store, as the
API does (the same code, without HTTP).

- writes: ``--writes`` entity updates one after another: write → event acknowledged
  by Kafka (the cost of one API write without HTTP).
- chain: entity updates at ``--rate`` per second for ``--seconds``, each starting one
  run of ``EVENT_TRIGGER → UPSERT_ENTITY`` (the node writes a copy of the entity into
  another blueprint, which triggers nothing). Latency is measured from before the
  write to the run's ``createdAt`` and ``completedAt`` (one machine, one clock);
  throughput counts the completed runs observed, not the writes made.

Durability: Redis as started (the stack's ``appendfsync everysec``), the broker's
default flush, producers ``acks=all`` and idempotent. Figures are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from benchmarks import redis_figures
from benchmarks.timers import _process, _row
from switchyard.engine.store.client import redis_client
from switchyard.engine.store.entities import EntityStore, WriteBy
from switchyard.engine.store.entity_outbox import EntityEventPublisher
from switchyard.engine.store.runs import RunStore
from switchyard.engine.store.workflows import WorkflowStore
from switchyard.schemas import parse_workflow
from switchyard.schemas.entity_rules import BlueprintInput, EntityInput
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry


def _settings(db: int, home: Path) -> Settings:
    tag = uuid.uuid4().hex[:6]
    overrides: dict[str, object] = {
        "topic_prefix": f"bench-triggers-{tag}.", "engine_group": f"bench-triggers-{tag}",
        "triggers_group": f"bench-triggers-{tag}-matcher", "home": home,
    }  # fmt: skip
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        overrides["kafka_bootstrap_servers"] = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    url = urlsplit(os.environ.get("REDIS_URL") or Settings().redis_url)
    overrides["redis_url"] = url._replace(path=f"/{db}").geturl()
    return Settings(**overrides)  # type: ignore[arg-type]


def _workflow(identifier: str, source: str, copies: str) -> dict[str, object]:
    event = {"type": "ENTITY_UPDATED", "blueprintIdentifier": source}
    mapping = {
        "identifier": "{{ .outputs.trigger.context.entityIdentifier }}",
        "properties": {"round": "{{ .outputs.trigger.diff.after.properties.round }}"},
    }
    return {
        "identifier": identifier,
        "nodes": [
            {"identifier": "trigger", "config": {"type": "EVENT_TRIGGER", "event": event}},
            {"identifier": "copy", "config": {"type": "UPSERT_ENTITY",
                                              "blueprintIdentifier": copies, "mapping": mapping}},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "copy"}],
    }  # fmt: skip


async def _write(store: EntityStore, blueprint: str, identifier: str, round_: int) -> None:
    now = datetime.now(UTC)
    who = WriteBy(by="bench", event_id=f"evt_{uuid.uuid4().hex}", now=now)
    change = EntityInput.model_validate({"identifier": identifier, "properties": {"round": round_}})
    await store.upsert(blueprint, change, identifier, who, merge=True)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-triggers-") as home:
        settings = _settings(args.redis_db, Path(home))
        await ensure_topics(settings)
        redis = redis_client(settings)
        try:
            async with EventProducer(settings) as producer:
                await _bench(settings, redis, producer, args)
        finally:
            await redis.aclose()


async def _bench(
    settings: Settings, redis: aioredis.Redis, producer: EventProducer, args: argparse.Namespace
) -> None:
    tag = uuid.uuid4().hex[:6]
    source, copies, workflow = f"svc-{tag}", f"copy-{tag}", f"on-update-{tag}"
    publisher = EntityEventPublisher(
        redis, producer, TopicRegistry.from_settings(settings).entity_events.name
    )
    store = EntityStore(redis, publisher)
    now = datetime.now(UTC)
    for blueprint in (source, copies):
        body = {"identifier": blueprint, "title": blueprint,
                "schema": {"properties": {"round": {"type": "number"}}}}  # fmt: skip
        await store.create_blueprint(BlueprintInput.model_validate(body), "bench", now)
    rows = []
    started = time.perf_counter()
    for i in range(args.writes):
        await _write(store, copies, f"serial-{i}", i)  # a blueprint no trigger listens to
    took = time.perf_counter() - started
    rows.append(f"writes: {args.writes} one after another, {args.writes / took:,.0f} writes/s "
                f"({took / args.writes * 1000:.2f} ms each, write → event acked)")  # fmt: skip
    entities = [f"e-{i}" for i in range(int(args.rate * args.seconds))]
    for identifier in entities:  # created first: the chain measures updates
        await _write(store, source, identifier, 0)
    saved = await WorkflowStore(redis).save(
        parse_workflow(_workflow(workflow, source, copies)), create=True, now=datetime.now(UTC)
    )
    async with (
        _process("engine", settings),
        _process("executor", settings),
        _process("triggers", settings),
    ):
        written_at = await _drive(store, source, entities, args.rate)
        created, completed, finished_in = await _observe(settings, redis, workflow, written_at)
    rows.append(f"chain: {len(entities)} entity updates at {args.rate:g}/s, workflow "
                f"{saved.identifier} v{saved.version} (EVENT_TRIGGER → UPSERT_ENTITY)")  # fmt: skip
    rows.append(f"{'':<56} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'n':>7}")
    rows.append(_row("entity write → run created (matcher, engine)", created))
    rows.append(_row("entity write → run completed (+ UPSERT_ENTITY)", completed))
    rate = len(completed) / finished_in if finished_in else 0.0
    rows.append(f"completed runs observed: {len(completed)} of {len(entities)} in "
                f"{finished_in:.1f} s ({rate:,.0f} runs/s)")  # fmt: skip
    rows.append("durability: Redis as started (stack: appendfsync everysec), Kafka default "
                "flush, acks=all, idempotent producers")  # fmt: skip
    print("\n".join(rows))


async def _drive(
    store: EntityStore, blueprint: str, entities: list[str], rate: float
) -> dict[str, datetime]:
    """Update each entity once at ``rate`` per second; when each write began."""
    written_at: dict[str, datetime] = {}
    start = time.monotonic()
    pending: set[asyncio.Task[None]] = set()
    for index, identifier in enumerate(entities):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        written_at[identifier] = datetime.now(UTC)
        task = asyncio.create_task(_write(store, blueprint, identifier, 1))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return written_at


async def _observe(
    settings: Settings,
    redis: aioredis.Redis,
    workflow: str,
    written_at: dict[str, datetime],
    within: float = 120,
) -> tuple[list[float], list[float], float]:
    """Wait for every run to complete; latencies (ms) to created and to completed."""
    partitions = settings.inbox_partitions
    runs = RunStore(redis, partitions)
    first = min(written_at.values())
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        ids = await redis_figures.run_ids_of(redis, partitions, workflow)
        loaded = await runs.load(ids)
        done = [s.state for s in loaded.values() if s.state.is_completed]
        if len(done) >= len(written_at):
            break
        await asyncio.sleep(0.2)
    created, completed, last = [], [], first
    for stored in loaded.values():
        state = stored.state
        trigger = state.node_run_of(state.trigger)
        output = trigger.output if trigger is not None else None
        entity = (
            output.get("context", {}).get("entityIdentifier") if isinstance(output, dict) else None
        )
        began = written_at.get(entity) if isinstance(entity, str) else None
        if began is None:
            continue
        created.append((state.created_at - began) / timedelta(milliseconds=1))
        if state.completed_at is not None:
            completed.append((state.completed_at - began) / timedelta(milliseconds=1))
            last = max(last, state.completed_at)
    return created, completed, (last - first).total_seconds()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=50.0, help="entity updates per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--writes", type=int, default=500, help="serial writes measured")
    parser.add_argument("--redis-db", type=int, default=14)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
