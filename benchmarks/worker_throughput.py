"""Node runs per second that one worker completes with a no-op handler.

Run against a running Kafka and Redis (``switchyard stack up --infra-only``)::

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092 REDIS_URL=redis://127.0.0.1:16379/0 \\
        .venv/bin/python benchmarks/worker_throughput.py [--kafka N] [--claim N]

- Kafka worker: N node-run requests are put on a fresh node-run-requests topic, then
  one :class:`KafkaWorker` consumes them, runs the handler and produces each
  ``NodeRunUpdated`` to the inbox (acknowledged by the broker) and commits; the clock
  runs from its start to its last commit.
- Claim/ack worker: the engine and the API run as their own processes
  (``switchyard engine`` / ``switchyard bridge``); N runs of an INTEGRATION_ACTION
  workflow are triggered and left pending; then one :class:`ClaimWorker` claims,
  acks, runs and PATCHes them all; the clock stops at the last PATCH's answer.
  ``--claim-limit`` and ``--claim-concurrency`` set the worker's; the CPU each
  process spent per node run meanwhile (engine, bridge, this worker; from ``/proc``)
  is printed beside the rate, to tell which one bounds it.

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from switchyard.bridge.credentials import write_dev_config
from switchyard.consumers import ClaimWorker, KafkaWorker, RunsClient, WorkContext
from switchyard.engine.store import keys
from switchyard.engine.store.client import redis_client
from switchyard.engine.store.slots import partition_tag
from switchyard.schemas import RunTriggered, encode, new_run_id, node_run_id
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry

REPO = Path(__file__).resolve().parents[1]


class Counter:
    """A no-op handler that notes when the first node run started and the n-th ended."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.calls = 0
        self.first = 0.0
        self.all_called = asyncio.Event()

    async def __call__(self, ctx: WorkContext) -> None:
        if self.calls == 0:
            # From the first node run, not from start(): a consumer group's first join
            # waits out the broker's initial rebalance delay (3 s), which is not work.
            self.first = time.perf_counter()
        self.calls += 1
        if self.calls >= self.count:
            self.all_called.set()


async def _poll(probe: Callable[[], Awaitable[bool]], within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while True:
        if await probe():
            return
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the setup")
        await asyncio.sleep(0.05)


def _settings() -> Settings:
    return Settings(
        kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:16379/0"),
        topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.",
    )


def _request(run_id: str) -> bytes:
    nr = node_run_id(run_id, "work")
    context = {"workflowIdentifier": "bench", "workflowRunId": run_id, "nodeRunId": nr,
               "nodeIdentifier": "work", "runId": nr}  # fmt: skip
    return orjson.dumps({"payload": {"n": 1}, "context": context})


async def kafka_worker(settings: Settings, count: int) -> float:
    await ensure_topics(settings)
    topic = TopicRegistry.from_settings(settings).node_run_requests.name
    async with EventProducer(settings) as producer:
        futures = []
        for _ in range(count):
            run_id = new_run_id(os.urandom)
            futures.append(await producer.send(topic, run_id, _request(run_id)))
        await producer.flush_sent(futures)
    handler = Counter(count)
    worker: KafkaWorker[Any] = KafkaWorker(settings, handler, group="bench", max_records=500)
    await worker.start()
    running = asyncio.create_task(worker.run())
    await handler.all_called.wait()
    worker.stop_soon()
    await running  # the last batch's updates are acknowledged and its offsets committed
    elapsed = time.perf_counter() - handler.first
    await worker.stop()
    return count / elapsed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _workflow(installation: str) -> dict[str, Any]:
    return {"identifier": installation, "nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
        {"identifier": "work", "config": {
            "type": "INTEGRATION_ACTION", "installationId": installation,
            "integrationProvider": "github-ocean", "integrationInvocationType": "dispatch_workflow",
            "integrationActionExecutionProperties": {"n": 1}}},
    ], "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}]}  # fmt: skip


async def _ready(files: list[Path], procs: list[asyncio.subprocess.Process]) -> bool:
    for proc in procs:
        if proc.returncode is not None:
            raise SystemExit(f"a service exited with {proc.returncode}")
    return all(f.exists() for f in files)


async def _spawn(
    name: str, ready: Path, env: dict[str, str], log: Any
) -> asyncio.subprocess.Process:
    command = ["-m", "switchyard.cli.main", name, "--ready-file", str(ready)]
    return await asyncio.create_subprocess_exec(
        sys.executable, *command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log
    )


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_of(procs: list[asyncio.subprocess.Process]) -> list[float]:
    return [*(_cpu_s(proc.pid) for proc in procs), _cpu_s(os.getpid())]


async def claim_worker(
    settings: Settings, count: int, *, limit: int = 100, concurrency: int = 64
) -> float:
    await ensure_topics(settings)
    home = Path(tempfile.mkdtemp(prefix="bench-claims-"))
    machine = next(c for c in write_dev_config(home / "auth.json") if c.client_id == "dev-machine")
    port = _free_port()
    env = {**os.environ, "SWITCHYARD_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "SWITCHYARD_REDIS_URL": settings.redis_url,
           "SWITCHYARD_TOPIC_PREFIX": settings.topic_prefix,
           "SWITCHYARD_AUTH_FILE": str(home / "auth.json"),
           "SWITCHYARD_TOKEN_SECRET": uuid.uuid4().hex * 2,
           "SWITCHYARD_BRIDGE_PORT": str(port), "SWITCHYARD_HOME": str(home),
           "SWITCHYARD_ENGINE_OPS_PORT": "0"}  # fmt: skip
    ready = [home / "engine.ready", home / "bridge.ready"]
    log = (home / "services.log").open("wb")
    procs = [
        await _spawn(name, file, env, log)
        for name, file in zip(("engine", "bridge"), ready, strict=True)
    ]
    redis = redis_client(settings)
    try:
        await _poll(lambda: _ready(ready, procs))
        installation = f"bench-{uuid.uuid4().hex[:8]}"
        async with RunsClient(f"http://127.0.0.1:{port}", machine.client_id,
                              machine.client_secret) as client:  # fmt: skip
            await client.request("POST", "/v1/workflows", json=_workflow(installation))
            await _trigger(settings, installation, count)
            # Each inbox partition keeps the installation's pending set of its runs.
            partitions = settings.inbox_partitions
            claims = [keys.claims(installation, partition_tag(p, partitions))
                      for p in range(partitions)]  # fmt: skip
            await _poll(lambda: _at_least(redis, claims, count))
            handler = Counter(count)
            worker = ClaimWorker(client, installation, handler, limit=limit,
                                 concurrency=concurrency, visibility_timeout_ms=5_000)  # fmt: skip
            await worker.start()
            cpu_before = _cpu_of(procs)
            running = asyncio.create_task(worker.run())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(handler.all_called.wait(), 120)
            worker.stop_soon()
            await running  # every PATCH has been answered
            elapsed = time.perf_counter() - handler.first
            spent = [
                after - before for before, after in zip(cpu_before, _cpu_of(procs), strict=True)
            ]
            per = " · ".join(
                f"{name} {1000 * cpu / max(worker.completed, 1):.2f}"
                for name, cpu in zip(("engine", "bridge", "worker"), spent, strict=True)
            )
            print(f"claim/ack CPU-ms per node run: {per}", flush=True)
            if worker.completed < count:
                print(f"claim/ack worker: only {worker.completed} of {count} completed", flush=True)
        return worker.completed / elapsed
    finally:
        await redis.aclose()
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):  # it exited already
                proc.terminate()
        for proc in procs:
            await proc.wait()
        log.close()


async def _at_least(redis: aioredis.Redis, claim_sets: list[str], count: int) -> bool:
    return sum([int(await redis.zcard(key)) for key in claim_sets]) >= count


async def _trigger(settings: Settings, workflow: str, count: int) -> None:
    inbox = TopicRegistry.from_settings(settings).inbox.name
    async with EventProducer(settings) as producer:
        futures = []
        for _ in range(count):
            run_id = new_run_id(os.urandom)
            event = RunTriggered(run_id=run_id, workflow_identifier=workflow,
                                 created_by="bench", triggered_at=datetime.now(UTC))  # fmt: skip
            futures.append(await producer.send(inbox, run_id, encode(event)))
        await producer.flush_sent(futures)


async def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description="worker throughput with a no-op handler")
    parser.add_argument("--kafka", type=int, default=5000, help="node runs for the Kafka worker")
    parser.add_argument("--claim", type=int, default=1000, help="node runs for claim/ack")
    parser.add_argument("--claim-limit", type=int, default=100, help="the claim worker's limit")
    parser.add_argument(
        "--claim-concurrency", type=int, default=64, help="the claim worker's concurrency"
    )
    args = parser.parse_args()
    if args.kafka:
        rate = await kafka_worker(_settings(), args.kafka)
        print(f"kafka worker:     {rate:8.0f} node runs/s  ({args.kafka} node runs)", flush=True)
    if args.claim:
        rate = await claim_worker(
            _settings(), args.claim, limit=args.claim_limit, concurrency=args.claim_concurrency
        )
        print(f"claim/ack worker: {rate:8.0f} node runs/s  ({args.claim} node runs)", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
