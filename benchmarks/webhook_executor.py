"""The webhook executor alone: request on its topic → HTTP call → report on the inbox.

    python -m benchmarks.webhook_executor [--rate 150] [--seconds 15] [--slow 0.01:200]
        [--old-loop] [--default-client] [--linger-ms 2] [--fetch-wait-ms 500]

Against a running broker (``SWITCHYARD_KAFKA_BOOTSTRAP_SERVERS``, e.g. the test
stack's) on topics of its own (a fresh ``SWITCHYARD_TOPIC_PREFIX``): no engine, so
the figures are the executor's own, whatever the engine costs. Three processes: this
driver (an open loop producing ``WebhookRequest`` records at ``--rate`` and reading
the reports), the executor (``WebhookService``, as ``switchyard executor`` runs it)
and the ``webhook`` workload's keep-alive receiver. ``--slow F:MS``: a fraction F of
the calls are answered after MS ms (a receiver with a tail). ``--old-loop`` /
``--default-client``: the worker loop and HTTP client before issue 16 (one batch at
a time, commit, then the next fetch; httpx's default pool), to compare. Prints the
latency from produce to report (p50/p90/p99/max, ms). Figures, never assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from benchmarks.cpu import cpu_seconds
from benchmarks.load import distribution
from switchyard.consumers import KafkaWorker
from switchyard.consumers.webhook import WebhookService, pooled_client
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from switchyard.topics.connection import kafka_options
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry


async def _old_run(self: KafkaWorker[Any]) -> None:
    """The loop before issue 16: each batch handled and committed before the next fetch."""
    while not self._stopping.is_set():
        batches = await self._consumer.getmany(timeout_ms=200)
        if not batches:
            continue
        records = [r for rs in batches.values() for r in rs]
        await asyncio.gather(*(self._one(r) for r in records))
        await self._commit({tp: rs[-1].offset + 1 for tp, rs in batches.items()})


async def executor(args: argparse.Namespace) -> None:
    """The executor process: WebhookService until stdin closes."""
    settings = Settings()
    if args.old_loop:
        KafkaWorker.run = _old_run  # type: ignore[method-assign]
    producer = EventProducer(settings, linger_ms=args.linger_ms)
    http = httpx.AsyncClient() if args.default_client else pooled_client(settings)
    async with http:
        await producer.start()
        service = WebhookService(settings, producer, http, lambda: datetime.now(UTC))
        worker = service.loop
        worker.max_batches = args.max_batches
        await worker.start()
        # Set after start(): aiokafka makes its fetcher there (the worker takes no such option).
        worker.consumer._fetcher._fetch_max_wait_ms = args.fetch_wait_ms
        running = asyncio.create_task(worker.run())
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        worker.stop_soon()
        await running
        await worker.stop()
        await producer.stop()


_RESPONSE = (
    b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'
)


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """200 to every request of a keep-alive connection; ``/sleep/<ms>`` after that long."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            length = next((int(line[15:]) for line in lines
                           if line[:15].lower() == b"content-length:"), 0)  # fmt: skip
            if length:
                await reader.readexactly(length)
            path = lines[0].split(b" ")[1]
            if path.startswith(b"/sleep/"):
                await asyncio.sleep(int(path[7:]) / 1000)
            writer.write(_RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def receiver() -> None:
    """The receiver process: prints its URL, serves until stdin closes."""
    server = await asyncio.start_server(_answer, "127.0.0.1", 0, backlog=1024)
    async with server:
        print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def _request(url: str, slow: tuple[float, int]) -> tuple[str, bytes]:
    run_id = f"wfr_{uuid.uuid4().hex[:16]}"
    node_run = f"wfnr_{uuid.uuid4().hex[:16]}"
    fraction, ms = slow
    path = f"/sleep/{ms}" if random.random() < fraction else "/hook"
    body = {"url": url + path, "method": "POST", "body": {"n": 1}, "context": {
        "workflowIdentifier": "bench-webhook", "workflowRunId": run_id, "nodeRunId": node_run,
        "nodeIdentifier": "call", "runId": node_run}}  # fmt: skip
    return run_id, orjson.dumps(body)


async def _reports(settings: Settings, sent: dict[str, float], seen: list[float],
                   total: int) -> None:  # fmt: skip
    consumer = AIOKafkaConsumer(
        TopicRegistry.from_settings(settings).inbox.name,
        **kafka_options(settings), auto_offset_reset="earliest",
    )  # fmt: skip
    await consumer.start()
    try:
        while len(seen) < total:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                now = time.monotonic()
                for record in records:
                    started = sent.pop((record.key or b"").decode(), None)
                    if started is not None:
                        seen.append((now - started) * 1000)
    finally:
        await consumer.stop()


async def drive(args: argparse.Namespace, settings: Settings, url: str) -> dict[str, Any]:
    topic = TopicRegistry.from_settings(settings).webhook_requests.name
    total = int(args.rate * args.seconds)
    sent: dict[str, float] = {}
    seen: list[float] = []
    async with EventProducer(settings, linger_ms=0) as producer:
        reading = asyncio.create_task(_reports(settings, sent, seen, total))
        started = time.monotonic()
        for i in range(total):
            delay = started + i / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            run_id, value = _request(url, args.slow)
            sent[run_id] = time.monotonic()
            await producer.send(topic, run_id, value)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reading, 60)
    return {"offered_per_s": args.rate, "sent": total, "latency_ms": distribution(seen)}


def _slow(text: str) -> tuple[float, int]:
    fraction, ms = text.split(":")
    return float(fraction), int(ms)


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", *args], env=env, text=True,
                            stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    env = {**os.environ, "SWITCHYARD_TOPIC_PREFIX": prefix,
           "SWITCHYARD_WEBHOOK_ALLOW_HOSTS": '["127.0.0.1/32"]',
           "SWITCHYARD_ENGINE_GROUP": f"{prefix}engine",
           "SWITCHYARD_EXECUTOR_INSTANCE_ID": f"{prefix}executor"}  # fmt: skip
    os.environ.update(env)
    settings = Settings()
    await ensure_topics(settings)
    receiver = _spawn(["benchmarks.webhook_executor", "--receiver"], env)
    flags = [f"--linger-ms={args.linger_ms}", f"--fetch-wait-ms={args.fetch_wait_ms}",
             f"--max-batches={args.max_batches}"]  # fmt: skip
    flags += ["--old-loop"] * args.old_loop + ["--default-client"] * args.default_client
    worker = _spawn(["benchmarks.webhook_executor", "--executor", *flags], env)
    try:
        assert worker.stdout is not None
        assert receiver.stdout is not None
        loop = asyncio.get_running_loop()
        url = (await loop.run_in_executor(None, receiver.stdout.readline)).strip()
        await loop.run_in_executor(None, worker.stdout.readline)  # "ready"
        cpu = cpu_seconds(worker.pid)
        result = await drive(args, settings, url)
        result["executor_cpu_ms_per_call"] = round(
            (cpu_seconds(worker.pid) - cpu) * 1000 / max(1, result["latency_ms"]["n"]), 3
        )
        print(json.dumps(result))
    finally:
        for process in (worker, receiver):
            assert process.stdin is not None
            process.stdin.close()
        for process in (worker, receiver):
            process.wait(30)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--slow", type=_slow, default=(0.0, 0))
    parser.add_argument("--old-loop", action="store_true")
    parser.add_argument("--default-client", action="store_true")
    parser.add_argument("--linger-ms", type=int, default=2)
    parser.add_argument("--fetch-wait-ms", type=int, default=500)
    parser.add_argument("--max-batches", type=int, default=4)
    parser.add_argument("--executor", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    if arguments.receiver:
        asyncio.run(receiver())
    else:
        asyncio.run(executor(arguments) if arguments.executor else main(arguments))
