"""Long-running processes: ``switchyard engine | executor | timers | scheduler | triggers |
bridge``.

Each runs until SIGTERM or SIGINT, then stops taking work, finishes what it holds
and exits. With ``--ready-file`` it writes its pid there once it serves, which is
how ``switchyard stack up`` knows it is ready (and removes it on the way out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import redis.asyncio as aioredis
import uvicorn
from starlette.types import ASGIApp

from switchyard.bridge.app import create_app
from switchyard.cli import runtime
from switchyard.cli.readiness import ops_endpoints
from switchyard.consumers.ai import AiService
from switchyard.consumers.entities import EntityService
from switchyard.consumers.kafka_worker import KafkaWorker
from switchyard.consumers.webhook import WebhookService, pooled_client
from switchyard.engine.inbox import FaustInbox
from switchyard.engine.retention import pruning
from switchyard.engine.scheduler import SchedulerService
from switchyard.engine.service import EngineService
from switchyard.engine.store.client import connect, redis_client
from switchyard.engine.templates import JqTemplates, TemplateLimits
from switchyard.engine.timers import TimerService
from switchyard.engine.trigger_matcher import TriggerMatcher
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from switchyard.topics.telemetry import metrics
from switchyard.topics.telemetry.checks import consumer_check, kafka_check, redis_check, task_check
from switchyard.topics.telemetry.logs import configure_logging, secret_values
from switchyard.topics.telemetry.ops import Check, CheckFn, OpsServer
from switchyard.topics.telemetry.tracing import configure_tracing

log = logging.getLogger("switchyard")
_STREAM_GRACE_S = 5


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@contextlib.contextmanager
def ready_marker(ready_file: Path | None) -> Iterator[None]:
    """The process's pid in ``ready_file`` while it serves: what `stack up` waits for."""
    if ready_file is not None:
        ready_file.parent.mkdir(parents=True, exist_ok=True)
        ready_file.write_text(f"{os.getpid()}\n")
    try:
        yield
    finally:
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)


def _engine_checks(engine: EngineService) -> dict[str, CheckFn]:
    inbox = engine.inbox
    if isinstance(inbox, FaustInbox):

        async def faust_consumer() -> Check:
            topic = engine.processor.registry.inbox.name
            held = sorted(tp.partition for tp in inbox.app.consumer.assignment())
            if held:
                return Check.passed(f"assigned {len(held)} partitions of {topic}: {held}")
            return Check.failed(f"assigned 0 partitions of {topic} (faust driver)")

        consumer: CheckFn = faust_consumer
    else:
        consumer = consumer_check([(inbox.consumer, inbox.topic)])
    return {
        "redis": redis_check(engine.redis),
        "kafka": kafka_check(engine.producer),
        "consumer": consumer,
    }


async def run_engine(settings: Settings, ready_file: Path | None) -> None:
    with JqTemplates(TemplateLimits.from_settings(settings)) as templates:
        engine = EngineService(settings, templates)
        # Served from the start (a liveness probe answers while the engine connects),
        # stopped last: /readyz fails while the engine starts and while it drains.
        async with ops_endpoints(settings, "engine", _engine_checks(engine)):
            await engine.start()
            try:
                with ready_marker(ready_file):
                    log.info(
                        "engine consuming %s with the %s driver",
                        settings.kafka_bootstrap_servers,
                        settings.engine_driver,
                    )
                    await _until_signalled()
            finally:
                log.info("engine stopping after %d events", engine.inbox.processed)
                await _stop_within(engine.stop(), settings.shutdown_grace_s, "engine")
    if getattr(engine.inbox, "failed", None) is not None:
        # Replicas never acknowledged (redis_wait_replicas): a failure, for the
        # supervisor to restart it, and the restart is what redelivers the batches.
        raise SystemExit(1)


async def _stop_within(stopping: Coroutine[Any, Any, None], grace: float, what: str) -> None:
    """Drain for at most ``grace`` seconds. A batch still held then (Redis or Kafka
    away) is given up: its offsets were never committed, so it is redelivered to
    whoever owns the partition next and its stored offsets make that safe."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    # A stop cut short may swallow its cancellation and return: judge by the clock.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping, grace)
    if loop.time() - started >= grace:
        log.error("%s did not drain within %.0f s; exiting, the batch in hand is redelivered",
                  what, grace)  # fmt: skip


async def run_executor(settings: Settings, ready_file: Path | None) -> None:
    """The built-in executors in one process: webhooks, AI nodes (which fail saying
    how to configure an endpoint when SWITCHYARD_AI_BASE_URL is unset), UPSERT_ENTITY
    nodes, and the relay of entity events a crash left in the outbox."""
    if settings.log_level != "DEBUG":
        # httpx logs every call at INFO: a JSON record per webhook call, repeating what
        # the node run's log and switchyard_webhook_calls_total hold, on the hot path.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    redis = redis_client(settings)
    producer = EventProducer(settings)
    http = pooled_client(settings)
    async with http, _executor_ops(settings, redis, producer) as ops:
        await connect(redis)
        await producer.start()
        clock = lambda: datetime.now(UTC)  # noqa: E731
        webhooks = WebhookService(settings, producer, http, clock).loop
        ai = AiService(settings, producer, http, clock).loop
        entities = EntityService(settings, producer, redis, clock)
        loops: list[KafkaWorker[Any]] = [webhooks, ai, entities.loop]
        ops.add_check("consumer", consumer_check([(w.consumer, w.topic) for w in loops]))
        for loop in loops:
            await loop.start()
        await entities.relay.start()
        tasks = [asyncio.create_task(loop.run()) for loop in loops]
        try:
            with ready_marker(ready_file):
                await _until_signalled()
        finally:
            for loop in loops:
                loop.stop_soon()

            async def drain() -> None:
                await asyncio.gather(*tasks)
                for loop in loops:
                    await loop.stop()
                await entities.relay.stop()

            await _stop_within(drain(), settings.shutdown_grace_s, "executor")
            await redis.aclose()


@contextlib.asynccontextmanager
async def _executor_ops(
    settings: Settings, redis: aioredis.Redis, producer: EventProducer
) -> AsyncIterator[OpsServer]:
    checks = {"redis": redis_check(redis), "kafka": kafka_check(producer)}
    async with ops_endpoints(settings, "executor", checks) as ops:
        try:
            yield ops
        finally:
            await producer.stop()  # before the ops endpoints: they stop last


class _Loop(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def _run_loop(
    settings: Settings,
    ready_file: Path | None,
    what: str,
    build: Callable[[aioredis.Redis, EventProducer], _Loop],
    started: str,
) -> None:
    """A Redis + Kafka loop service (timers, scheduler, trigger matcher) until signalled,
    then drained for at most the shutdown grace."""
    redis = redis_client(settings)
    producer = EventProducer(settings)
    checks = {"redis": redis_check(redis), "kafka": kafka_check(producer)}
    try:
        async with ops_endpoints(settings, what, checks) as ops, producer:
            await connect(redis)
            service = build(redis, producer)
            for name, check in _loop_checks(what, service).items():
                ops.add_check(name, check)
            await service.start()
            try:
                with ready_marker(ready_file):
                    log.info("%s", started)
                    await _until_signalled()
            finally:
                await _stop_within(service.stop(), settings.shutdown_grace_s, what)
    finally:
        await redis.aclose()


def _loop_checks(what: str, service: _Loop) -> dict[str, CheckFn]:
    if isinstance(service, TriggerMatcher):
        return {"consumer": consumer_check([(service.consumer, service.topic)])}
    # TimerService and SchedulerService name their loop tasks so.
    return {"loop": task_check(f"{what}-loop")}


async def run_timers(settings: Settings, ready_file: Path | None) -> None:
    # A batch cut short stays armed in Redis and fires after a restart.
    inbox = TopicRegistry.from_settings(settings).inbox.name
    build = partial(TimerService, settings)
    async with pruning(settings):  # finished runs past run_retention_days, in the background
        await _run_loop(settings, ready_file, "timers", build, f"timers firing into {inbox}")


async def run_scheduler(settings: Settings, ready_file: Path | None) -> None:
    # A tick produced but not recorded fires again (same run id) after a restart.
    inbox = TopicRegistry.from_settings(settings).inbox.name
    build = partial(SchedulerService, settings)
    started = f"scheduler firing schedule triggers into {inbox}"
    await _run_loop(settings, ready_file, "scheduler", build, started)


async def run_triggers(settings: Settings, ready_file: Path | None) -> None:
    """The trigger matcher: entity events start the runs of matching EVENT_TRIGGERs. A
    batch cut short is redelivered: its run ids are derived, so each run starts once."""
    topic = TopicRegistry.from_settings(settings).entity_events.name
    with JqTemplates(TemplateLimits.from_settings(settings)) as templates:

        def build(redis: aioredis.Redis, producer: EventProducer) -> _Loop:
            return TriggerMatcher(settings, redis, producer, templates)

        started = f"trigger matcher consuming {topic}"
        await _run_loop(settings, ready_file, "triggers", build, started)


def bridge_config(settings: Settings, app: ASGIApp) -> uvicorn.Config:
    """How each bridge process serves ``app`` (one, or each of a group's children)."""
    # An open live stream would hold a graceful shutdown for as long as it stays open;
    # streams resume by Last-Event-ID, so they are cut after a short grace.
    return uvicorn.Config(
        app, host=settings.bridge_host, port=settings.bridge_port,
        log_level="warning", lifespan="on", log_config=None,  # our handler (telemetry.logs)
        timeout_graceful_shutdown=min(int(settings.shutdown_grace_s), _STREAM_GRACE_S),
    )  # fmt: skip


async def serve_bridge(
    server: uvicorn.Server, ready_file: Path | None, sockets: list[socket.socket] | None = None
) -> None:
    """Serve until SIGTERM (on ``sockets`` when given: a group's shared listener)."""
    serving = asyncio.create_task(server.serve(sockets))
    while not server.started:
        if serving.done():
            await serving  # raises what made it fail
            return
        await asyncio.sleep(0.02)
    with ready_marker(ready_file):
        await serving  # uvicorn handles SIGTERM itself and returns


async def run_bridge(settings: Settings, ready_file: Path | None) -> None:
    server = uvicorn.Server(bridge_config(settings, create_app(settings)))
    await serve_bridge(server, ready_file)


SERVICES: dict[str, Callable[[Settings, Path | None], Coroutine[Any, Any, None]]] = {
    "engine": run_engine,
    "executor": run_executor,
    "timers": run_timers,
    "scheduler": run_scheduler,
    "triggers": run_triggers,
    "bridge": run_bridge,
}


def serve(name: str, settings: Settings, ready_file: Path | None) -> int:
    configure_logging(settings.log_format, settings.log_level, process=name,
                      secrets=secret_values(settings))  # fmt: skip
    metrics.set_enabled(settings.metrics_enabled)
    configure_tracing(name)
    runtime.run(SERVICES[name](settings, ready_file), settings)
    return 0
