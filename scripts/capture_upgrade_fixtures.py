"""Capture a release's waiting runs for the in-place upgrade test.

Run it with the *release's* code on the path (not this checkout's), against Kafka and
a Redis database other than 0; it writes ``tests/fixtures/upgrade/<release>/``:

    git worktree add /tmp/release <commit>
    mkdir -p /tmp/release-path/switchyard
    for d in bridge cli consumers engine schemas topics; do
        ln -sfn /tmp/release/$d /tmp/release-path/switchyard/$d; done
    PYTHONPATH=/tmp/release-path .venv/bin/python scripts/capture_upgrade_fixtures.py \\
        --release <commit> --kafka 127.0.0.1:29092 --redis redis://127.0.0.1:26379/1
    git worktree remove --force /tmp/release

(a ``PYTHONPATH`` entry is searched before the editable install's finder, so every
``switchyard.*`` import is the release's). The script runs that release's engine
in-process on topics of its own, defines the workflows below, triggers runs and
reports some node runs complete, until each run waits on a node run and every
outbox is published. Then it stops the engine and writes:

- ``redis.json``: every key and member the capture's runs own, type-aware
  (strings, hashes, lists, sets, sorted sets with scores, streams, TTLs); from the
  indexes runs share, only the members that name its runs (``dump_key``). What it
  captured is removed afterwards, and its topics deleted;
- ``inbox.json``: every record of the inbox topic with its partition and offset (the
  stored runs remember the offsets they applied, so the test replays these first);
- ``manifest.json``: the release, its key layout (``keyLayout``: 1 before the
  partition tags, ``docs/cluster-layout.md``), the inbox partitions, what the runs add
  to the node-runs-in-flight counts, and each run with the node runs it still waits
  on (none: it finished before the capture) and the outputs the test reports for
  them, and the external run ids its node runs were given.

It imports only what every release since the capture's first (db414b1) has, and
names the keys of either layout: those of layout 1 by their literal names (this
checkout's ``keys.py`` no longer has them), those of layout 2 per partition.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import inspect
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient

from switchyard.engine.service import EngineService
from switchyard.engine.store import keys
from switchyard.engine.store.runs import RunStore
from switchyard.engine.store.workflows import WorkflowStore
from switchyard.engine.templates import JqTemplates, TemplateLimits
from switchyard.schemas import NodeRunUpdated, RunTriggered, encode, node_run_id, parse_workflow
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from switchyard.topics.producer import EventProducer
from switchyard.topics.reader import read_topic
from switchyard.topics.registry import TopicRegistry

try:  # one place builds the clients (releases from d2fc24b on)
    from switchyard.engine.store.client import redis_client
    from switchyard.topics.connection import kafka_options
except ImportError:  # an older release: plain connections, as it made them

    def redis_client(settings: Settings, **kwargs: Any) -> aioredis.Redis:
        return aioredis.Redis.from_url(settings.redis_url, **kwargs)

    def kafka_options(settings: Settings) -> dict[str, Any]:
        return {"bootstrap_servers": settings.kafka_bootstrap_servers}


THIRTY_DAYS = 30 * 24 * 3600


def workflows(tag: str) -> list[dict[str, Any]]:
    """The captured workflows; ``tag`` makes their identifiers the capture's own."""
    return [
        {"identifier": f"upgrade-kafka-{tag}", "nodes": [
            # An entity-format input: the run is in that entity's index.
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {
                "properties": {"service": {"type": "string"}, "owner": {
                    "type": "string", "format": "entity", "blueprint": f"team-{tag}"}},
                "required": ["service"]}}},
            {"identifier": "build", "config": {
                "type": "KAFKA", "payload": {"service": "{{ .outputs.trigger.service }}"}}},
            {"identifier": "ship", "config": {
                "type": "KAFKA", "payload": {"image": "{{ .outputs.build.image }}"}}},
        ], "connections": [
            {"sourceIdentifier": "trigger", "targetIdentifier": "build"},
            {"sourceIdentifier": "build", "targetIdentifier": "ship"},
        ]},
        # Deadlines on the run and the node: armed timers (the test runs no timer service,
        # so they never fire; completing the run must disarm them).
        {"identifier": f"upgrade-deadline-{tag}", "timeoutSeconds": THIRTY_DAYS, "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
            {"identifier": "wait", "config": {"type": "KAFKA", "timeoutSeconds": THIRTY_DAYS,
                                              "payload": {"waiting": True}}},
        ], "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "wait"}]},
        # A pending claim of an integration worker.
        {"identifier": f"upgrade-claim-{tag}", "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
            {"identifier": "act", "config": {
                "type": "INTEGRATION_ACTION", "installationId": f"inst-upgrade-{tag}",
                "integrationProvider": "github", "integrationInvocationType": "WORKFLOW",
                "integrationActionExecutionProperties": {"ref": "main"}}},
        ], "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "act"}]},
    ]  # fmt: skip


# (workflow, inputs, nodes the release completes, with their outputs, before capture,
# the node a worker gives an externalRunId while it is in progress)
Run = tuple[str, dict[str, Any], list[tuple[str, dict[str, Any]]], str | None]
RUNS: list[Run] = [
    ("upgrade-kafka", {"service": "api"}, [], None),
    ("upgrade-kafka", {"service": "web"}, [], "build"),
    ("upgrade-kafka", {"service": "db", "owner": "db-team"}, [("build", {"image": "db:7"})], None),
    ("upgrade-deadline", {}, [], None),
    ("upgrade-claim", {}, [], None),
    # Finished before the capture (nothing remaining): its completed and result
    # indexes, the retention pruner's set, its event list's TTL.
    ("upgrade-kafka", {"service": "old", "owner": "db-team"},
     [("build", {"image": "old:1"}), ("ship", {"shipped": False})], None),
]  # fmt: skip
# What the test reports for each node a run still has to pass, and the output it gives.
LATER_OUTPUTS: dict[str, dict[str, Any]] = {
    "build": {"image": "built:1"},
    "ship": {"shipped": True},
    "wait": {"waited": "done"},
    "act": {"conclusion": "success"},
}
REMAINING: dict[str, list[str]] = {
    "upgrade-kafka": ["build", "ship"],
    "upgrade-deadline": ["wait"],
    "upgrade-claim": ["act"],
}


async def _until(check: Callable[[], Awaitable[bool]], what: str, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        await asyncio.sleep(0.1)


def _text(value: bytes) -> dict[str, str]:
    try:
        return {"t": value.decode()}
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(value).decode()}


def _members(kind: str, raw: Any) -> list[Any]:
    """A key's content as a list of members (what a filter keeps or drops)."""
    if kind == "hash":
        return sorted(raw.items())
    if kind == "set":
        return sorted(raw)
    if kind == "stream":
        return [(i, sorted(e.items())) for i, e in raw]
    return list(raw)  # list, zset (member, score)


def _mentions(member: Any, ids: tuple[bytes, ...]) -> bool:
    if isinstance(member, bytes):
        return any(i in member for i in ids)
    if isinstance(member, tuple | list):
        return any(_mentions(part, ids) for part in member)
    return False


async def _read(client: aioredis.Redis, key: bytes, kind: str) -> Any:
    if kind == "string":
        return await client.get(key)
    if kind == "hash":
        return await client.hgetall(key)
    if kind == "list":
        return await client.lrange(key, 0, -1)
    if kind == "set":
        return await client.smembers(key)
    if kind == "zset":
        return await client.zrange(key, 0, -1, withscores=True)
    if kind == "stream":
        return await client.xrange(key)
    raise ValueError(f"{key!r}: a {kind} key, which the capture can't write down")


def _json(kind: str, members: list[Any]) -> list[Any]:
    if kind in ("hash",):
        return [[_text(f), _text(v)] for f, v in members]
    if kind == "zset":
        return [[_text(m), score] for m, score in members]
    if kind == "stream":
        return [[i.decode(), [[_text(f), _text(v)] for f, v in fields]] for i, fields in members]
    return [_text(v) for v in members]


async def dump_key(client: aioredis.Redis, key: bytes, ids: tuple[bytes, ...]) -> dict[str, Any]:
    """The part of one key that is the capture's, as JSON (empty: none of it is).

    A key named after one of ``ids`` is the capture's whole (``whole``); of any other
    (an index all runs share: a sorted set of run ids, the node-run buckets, the
    timers, the event stream) only the members that mention one of ``ids`` are
    kept, so the database may hold other runs too. TTLs are kept (ms).
    """
    kind = _decoded(await client.type(key))
    raw = await _read(client, key, kind)
    whole = _mentions(key, ids)
    entry: dict[str, Any] = {"type": kind, "whole": whole}
    if kind == "string":
        if not whole:
            return {}
        entry["value"] = _text(raw)
    else:
        members = [m for m in _members(kind, raw) if whole or _mentions(m, ids)]
        if not members:
            return {}
        entry["value"] = _json(kind, members)
    ttl = await client.pttl(key)
    if ttl > 0 and whole:
        entry["pttl"] = ttl
    return entry


async def forget(client: aioredis.Redis, key: str, entry: dict[str, Any]) -> None:
    """Remove what ``dump_key`` captured of ``key`` (leaving other runs' members)."""
    kind, value = entry["type"], entry["value"]
    if entry["whole"]:
        await client.delete(key)
    elif kind == "hash":
        await client.hdel(key, *[f["t"] for f, _ in value])
    elif kind == "set":
        await client.srem(key, *[m["t"] for m in value])
    elif kind == "zset":
        await client.zrem(key, *[m["t"] for m, _ in value])
    elif kind == "stream":
        await client.xdel(key, *[i for i, _ in value])


def _ids(tag: str, runs: list[dict[str, Any]]) -> list[bytes]:
    """What names the capture's keys and members: its tag (in the workflow and the
    installation ids), its run ids and every node run id its workflows could give."""
    found = [tag, *(run["runId"] for run in runs)]
    nodes = {n["identifier"] for w in workflows(tag) for n in w["nodes"]}
    found += [node_run_id(run["runId"], node) for run in runs for node in nodes]
    return [i.encode() for i in found]


async def _drive(settings: Settings, redis: aioredis.Redis, tag: str) -> list[dict[str, Any]]:
    """Define the workflows, trigger the runs, wait until each waits on what it should."""
    store, runs = WorkflowStore(redis), RunStore(redis)
    now = datetime.now(UTC)
    for definition in workflows(tag):
        await store.save(parse_workflow(definition), create=True, now=now)
    async with EventProducer(settings) as producer:
        inbox = TopicRegistry.from_settings(settings).inbox.name

        async def send(run_id: str, event: Any) -> None:
            await producer.send_and_wait(inbox, run_id, encode(event))

        captured = [await _drive_one(send, runs, tag, n, run) for n, run in enumerate(RUNS)]
    partitions = settings.inbox_partitions
    await _until(lambda: _outboxes_empty(redis, partitions), "every outbox to be published")
    return captured


Send = Callable[[str, Any], Awaitable[None]]


async def _drive_one(send: Send, runs: RunStore, tag: str, n: int, run: Run) -> dict[str, Any]:
    """One run of ``RUNS`` to where it is captured; its manifest entry."""
    workflow, inputs, done, external = run
    run_id = f"wfr_upgrade{n:02d}{uuid.uuid4().hex[:7]}"  # 16 after wfr_
    await send(run_id, RunTriggered.model_validate({
        "runId": run_id, "workflowIdentifier": f"{workflow}-{tag}", "inputs": inputs,
        "createdBy": "upgrade@example.com", "triggeredAt": datetime.now(UTC),
    }))  # fmt: skip
    remaining = list(REMAINING[workflow])
    for node, output in done:
        await _waits_on(runs, run_id, node)
        await send(run_id, _update(run_id, node, "COMPLETED", output=output, result="SUCCESS"))
        remaining.remove(node)
    externals: dict[str, str] = {}
    if remaining:
        await _waits_on(runs, run_id, remaining[0])
    else:
        await _until(lambda: _status_is(runs, run_id, "COMPLETED"), f"{run_id} to complete")
    if external is not None:
        given = externals[node_run_id(run_id, external)] = f"ext-upgrade-{tag}-{n}"
        await send(run_id, _update(run_id, external, "IN_PROGRESS", externalRunId=given))
        await _until(lambda: _has_external(runs, run_id), f"{run_id}'s external id")
    return {
        "runId": run_id, "workflow": f"{workflow}-{tag}", "inputs": inputs,
        "completedBefore": dict(done), "externalRunIds": externals,
        "remaining": [{"node": node, "nodeRunId": node_run_id(run_id, node),
                       "output": LATER_OUTPUTS[node]} for node in remaining],
    }  # fmt: skip


def _update(run_id: str, node: str, status: str, **fields: Any) -> NodeRunUpdated:
    return NodeRunUpdated.model_validate({
        "runId": run_id, "nodeRunId": node_run_id(run_id, node), "status": status,
        "sentAt": datetime.now(UTC), **fields,
    })  # fmt: skip


async def _status_is(runs: RunStore, run_id: str, status: str) -> bool:
    state = await runs.get(run_id)
    return state is not None and state.status == status


async def _has_external(runs: RunStore, run_id: str) -> bool:
    state = await runs.get(run_id)
    return state is not None and any(nr.external_run_id for nr in state.node_runs)


async def _waits_on(runs: RunStore, run_id: str, node: str) -> None:
    async def waiting() -> bool:
        state = await runs.get(run_id)
        return state is not None and any(
            nr.node == node and nr.status == "IN_PROGRESS" for nr in state.node_runs
        )

    await _until(waiting, f"{run_id} to wait on {node}")


def key_layout() -> int:
    """The key layout of the release's code (the one on the path)."""
    try:
        from switchyard.engine.store.upgrade import KEY_LAYOUT
    except ImportError:  # before the store's format marker: layout 1
        return 1
    return KEY_LAYOUT


def _decoded(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _shared_keys(partitions: int) -> tuple[list[str], list[str]]:
    """The pending-outbox sets and the in-flight count hashes: layout 1's one of each,
    or one of each per inbox partition."""
    if key_layout() == 1:
        return [f"{keys.PREFIX}outbox:pending"], [f"{keys.PREFIX}stats:node-runs-in-flight"]
    from switchyard.engine.store.slots import partition_tag  # layout 2 on

    tags = [partition_tag(p, partitions) for p in range(partitions)]
    return [keys.outbox_pending(t) for t in tags], [keys.node_runs_in_flight(t) for t in tags]


async def _outboxes_empty(redis: aioredis.Redis, partitions: int) -> bool:
    pending, _ = _shared_keys(partitions)
    return all([int(await redis.scard(name)) == 0 for name in pending])


async def _in_flight(redis: aioredis.Redis, partitions: int) -> dict[str, int]:
    """The gauge's counts by node type (the sum over the partitions' hashes)."""
    total: dict[str, int] = {}
    for name in _shared_keys(partitions)[1]:
        for kind, count in (await redis.hgetall(name)).items():
            total[_decoded(kind)] = total.get(_decoded(kind), 0) + int(count)
    return total


async def capture(args: argparse.Namespace) -> dict[str, Any]:
    """The files to write, by name: what the release's engine left in Redis and Kafka."""
    if args.redis.rstrip("/").endswith("/0"):
        raise SystemExit("--redis: use a database other than 0 (the tests' shared one)")
    tag = uuid.uuid4().hex[:8]
    prefix = f"capture-{tag}."
    settings = Settings(
        kafka_bootstrap_servers=args.kafka, redis_url=args.redis, topic_prefix=prefix,
        run_retention_days=0, engine_ops_port=0, engine_group=f"capture-{prefix}",
    )  # fmt: skip
    redis = redis_client(settings)
    await ensure_topics(settings)
    before = await _in_flight(redis, settings.inbox_partitions)
    with JqTemplates(TemplateLimits.from_settings(settings)) as templates:
        async with EngineService(settings, templates):
            runs = await _drive(settings, redis, tag)
    # The in-flight gauge is one hash of counts by node type, not by run: what the
    # capture's runs added is kept as a delta, which the restore adds back.
    after = await _in_flight(redis, settings.inbox_partitions)
    in_flight = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    ids = tuple(_ids(tag, runs))
    dumped: dict[str, dict[str, Any]] = {}
    async for key in redis.scan_iter(count=500):
        entry = await dump_key(redis, key, ids)
        if entry:
            dumped[key.decode()] = entry
    inbox = TopicRegistry.from_settings(settings).inbox.name
    records = await _read_topic(settings, inbox)
    inbox_records = [
        {"partition": r.partition, "offset": r.offset, "key": _text(r.key or b""),
         "value": _text(r.value or b""), "headers": [[h, _text(v)] for h, v in r.headers]}
        for r in sorted(records, key=lambda r: (r.partition, r.offset))
    ]  # fmt: skip
    manifest = {
        "release": args.release, "capturedAt": datetime.now(UTC).isoformat(),
        "keyLayout": key_layout(), "inboxPartitions": settings.inbox_partitions,
        "topicPrefix": prefix, "tag": tag, "runs": runs, "nodeRunsInFlight": in_flight,
    }  # fmt: skip
    for key, entry in dumped.items():
        await forget(redis, key, entry)
    counts = _shared_keys(settings.inbox_partitions)[1][0]  # any partition's: a sum
    for node_type, count in in_flight.items():
        await redis.hincrby(counts, node_type, -count)
    await redis.aclose()
    await _delete_topics(settings)
    return {
        "redis.json": dict(sorted(dumped.items())),
        "inbox.json": inbox_records,
        "manifest.json": manifest,
    }


async def _read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every record of ``topic``: ``read_topic`` takes the settings, or (releases
    before d2fc24b) the bootstrap servers."""
    first = next(iter(inspect.signature(read_topic).parameters))
    source: Any = settings.kafka_bootstrap_servers if first == "bootstrap" else settings
    records: list[Any] = await read_topic(source, topic)
    return records


async def _delete_topics(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        await admin.delete_topics(names)
    finally:
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", required=True, help="the release's commit (folder name)")
    parser.add_argument("--kafka", default="127.0.0.1:29092", help="Kafka bootstrap servers")
    parser.add_argument("--redis", required=True, help="a Redis database URL (not /0)")
    parser.add_argument("--out", help="default: tests/fixtures/upgrade/<release>")
    args = parser.parse_args()
    files = asyncio.run(capture(args))
    out = Path(args.out or f"tests/fixtures/upgrade/{args.release}")
    out.mkdir(parents=True, exist_ok=True)
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
    for name, content in files.items():
        (out / name).write_bytes(orjson.dumps(content, option=options))
    counts = ", ".join(f"{name}: {len(content)}" for name, content in files.items())
    print(f"wrote {out} ({counts})")


if __name__ == "__main__":
    main()
