"""How long the local broker takes to serve again after ``kill -9`` and after a stop.

    python -m benchmarks.broker_restart [--times 3] [--session-ms N --heartbeat-ms M]

A broker of its own (the chaos stack's settings: the registry's topics) is killed
and restarted ``--times`` times each way; it prints the seconds from the kill until a
metadata request succeeds (the stack's readiness) and until a record is acknowledged
on every inbox partition (leaders elected). ``--session-ms``/``--heartbeat-ms`` add
``broker.session.timeout.ms``/``broker.heartbeat.interval.ms`` to its properties, to
compare (the hypothesis: after ``kill -9`` the controller waits out the dead
incarnation's session before the restarted broker is unfenced).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.chaos import free_port
from switchyard.cli.stack import kafka, processes
from switchyard.cli.stack.full import local_settings
from switchyard.cli.stack.kafka import KafkaBroker
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry


def _with_session(session_ms: int, heartbeat_ms: int) -> None:
    plain = kafka._server_properties

    def properties(*args: Any, **kwargs: Any) -> str:
        extra = f"broker.session.timeout.ms={session_ms}\n"
        extra += f"broker.heartbeat.interval.ms={heartbeat_ms}\n"
        return plain(*args, **kwargs) + extra

    kafka._server_properties = properties  # type: ignore[assignment]


async def _leaders(settings: Settings, within: float = 120.0) -> None:
    """Until a record is acknowledged on every inbox partition."""
    inbox = TopicRegistry.from_settings(settings).inbox
    deadline = time.monotonic() + within
    async with EventProducer(settings) as producer:
        for partition in range(inbox.partitions):
            while True:
                try:
                    sent = await producer._producer.send(inbox.name, b"x", partition=partition)
                    await asyncio.wait_for(sent, 30)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)


def measure(broker: KafkaBroker, settings: Settings, graceful: bool) -> tuple[float, float]:
    started = time.monotonic()
    if graceful:
        broker.stop()
    else:
        pid = broker.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        while processes.is_alive(pid):
            time.sleep(0.02)
    broker.wait_ready(broker.start())
    ready = time.monotonic() - started
    asyncio.run(_leaders(settings))
    return ready, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--times", type=int, default=3)
    parser.add_argument("--session-ms", type=int, default=0)
    parser.add_argument("--heartbeat-ms", type=int, default=0)
    args = parser.parse_args()
    if args.session_ms:
        _with_session(args.session_ms, args.heartbeat_ms or max(100, args.session_ms // 4))
    repo = Path(__file__).resolve().parents[1]
    home = Path(tempfile.mkdtemp(prefix="broker-restart-"))
    settings = local_settings(Settings(
        home=home, cache_home=repo / ".switchyard" / "cache", kafka_port=free_port(),
        kafka_controller_port=free_port(), redis_port=free_port(), kafka_heap="384m",
        topic_prefix="restart.",
    ))  # fmt: skip
    broker = KafkaBroker(settings)
    try:
        broker.wait_ready(broker.start())
        asyncio.run(ensure_topics(settings))
        asyncio.run(_leaders(settings))
        for graceful in (False, True):
            for _ in range(args.times):
                ready, leaders = measure(broker, settings, graceful)
                how = "stop   " if graceful else "kill -9"
                print(f"{how} metadata in {ready:5.1f} s, every inbox leader in {leaders:5.1f} s",
                      flush=True)  # fmt: skip
    finally:
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
