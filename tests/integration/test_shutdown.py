"""SIGTERM stops the engine within its grace period, even while Redis is away."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from switchyard.cli.stack import processes
from switchyard.cli.stack.full import environment
from switchyard.schemas import RunTriggered, encode
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from tests.helpers import until
from tests.integration.engine_support import new_run_id
from tests.ports import launcher_redis

pytestmark = pytest.mark.integration


def _log_has(log: Path, text: bytes) -> bool:
    return log.exists() and text in log.read_bytes()


async def test_sigterm_exits_within_the_grace_period_while_redis_is_down(
    topics: Settings, tmp_path: Path
) -> None:
    settings, redis = launcher_redis(topics.model_copy(update={"home": tmp_path}))
    settings = settings.model_copy(
        update={"shutdown_grace_s": 2.0, "engine_group": f"shutdown-{settings.redis_port}"}
    )
    ready, log = tmp_path / "engine.ready", tmp_path / "engine.log"
    with log.open("wb") as sink:
        engine = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchyard.cli.main", "engine", "--ready-file", str(ready),
            env={**os.environ, **environment(settings)},
            stdout=asyncio.subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip
    try:
        await until(lambda: asyncio.sleep(0, ready.exists() or engine.returncode is not None),
                    within=60)  # fmt: skip
        assert engine.returncode is None, log.read_text()[-2000:]
        pid = redis.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # Redis goes away: the next batch can't be applied
        await until(lambda: asyncio.sleep(0, not processes.is_alive(pid)))
        run_id = new_run_id()
        event = RunTriggered.model_validate({
            "runId": run_id, "workflowIdentifier": "any", "createdBy": "t",
            "triggeredAt": datetime.now(UTC),
        })  # fmt: skip
        async with EventProducer(settings) as producer:
            await producer.send_and_wait(f"{settings.topic_prefix}inbox", run_id, encode(event))
        # The batch is held, retried while Redis is away.
        await until(lambda: asyncio.sleep(0, _log_has(log, b"retrying")), within=30)

        engine.send_signal(signal.SIGTERM)
        # A generous deadline, not a speed check: the 2 s drain grace is what bounds it,
        # and its log line says it was applied.
        try:
            code = await asyncio.wait_for(engine.wait(), 60)
        except TimeoutError:
            pytest.fail(f"no exit 60 s after SIGTERM; the log ends: {log.read_text()[-2000:]}")
        assert code == 0, log.read_text()[-2000:]
        assert b"did not drain within 2 s" in log.read_bytes(), log.read_text()[-2000:]
    finally:
        if engine.returncode is None:
            engine.kill()
            await engine.wait()
        redis.stop()
