"""faust-streaming drives the inbox: one agent, ``concurrency=1``, batches of records.

faust acks an event when the agent moves past it, even if the handler raised or
was cancelled (faust-streaming #316, #606 and the ``finally`` ack in its stream
iterator). So the handler never raises: infrastructure failures are retried until
they pass, inside a shield, and the batch is acknowledged only after it is applied
and its effects published. The state machine never sees faust.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import faust

from switchyard.engine import metrics
from switchyard.engine.processor import InboxProcessor, InboxRecord, handle_batch
from switchyard.schemas.settings import Settings
from switchyard.topics.connection import ssl_context
from switchyard.topics.registry import TopicRegistry

if TYPE_CHECKING:
    from faust.auth import SASLCredentials, SSLCredentials

log = logging.getLogger("switchyard.engine")


def _headers(headers: Any) -> Sequence[tuple[str, bytes]]:
    """A faust message's headers (a list of pairs, or a mapping) as Kafka's pairs."""
    if not headers:
        return ()
    return list(headers.items()) if isinstance(headers, Mapping) else headers


def create_faust_app(settings: Settings) -> faust.App:
    """The constrained faust configuration of DESIGN.md: no tables, state lives in Redis."""
    return faust.App(
        settings.engine_group,
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        store="memory://",
        autodiscover=False,
        processing_guarantee="at_least_once",
        topic_partitions=settings.inbox_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        # A small in-flight set keeps redelivery after a rebalance small.
        stream_buffer_maxsize=max(256, settings.engine_batch_max * 2),
        broker_commit_every=100,
        broker_commit_interval=1.0,
        stream_wait_empty=True,
        table_standby_replicas=0,
        topic_disable_leader=True,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        consumer_group_instance_id=settings.engine_instance_id,
        broker_session_timeout=settings.engine_session_timeout_s,
        broker_heartbeat_interval=settings.engine_session_timeout_s / 3,
        broker_credentials=faust_broker_credentials(settings),
    )


def faust_broker_credentials(settings: Settings) -> SASLCredentials | SSLCredentials | None:
    """The connection of topics/connection.py's ``kafka_options``, as faust takes it."""
    # Imported here: faust.auth pulls in faust.types (~150 modules, ~11 MiB per process),
    # which every process importing this module (the CLI) would pay for otherwise.
    from faust.auth import SASLCredentials, SSLCredentials

    protocol = settings.kafka_security_protocol
    if protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        return SASLCredentials(
            username=settings.kafka_sasl_username,
            password=password.get_secret_value() if password else None,
            ssl_context=ssl_context(settings),
            mechanism=settings.kafka_sasl_mechanism,
        )
    if protocol == "SSL":
        return SSLCredentials(ssl_context(settings))
    return None


class FaustInbox:
    """Runs an :class:`InboxProcessor` over the inbox topic with faust."""

    def __init__(self, settings: Settings, processor: InboxProcessor) -> None:
        self.settings = settings
        self.processor = processor
        self.app = create_faust_app(settings)
        self.processed = 0
        self._busy = asyncio.Lock()
        self._inflight: set[asyncio.Future[None]] = set()
        self._state = "new"
        topic = self.app.topic(
            TopicRegistry.from_settings(settings).inbox.name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )
        self.app.agent(topic, name="switchyard-inbox", concurrency=1)(self._agent)

    async def _agent(self, stream: Any) -> None:
        within = self.settings.engine_batch_within_ms / 1000
        async for events in stream.take_events(self.settings.engine_batch_max, within=within):
            records = [
                InboxRecord(
                    topic=e.message.topic,
                    partition=e.message.partition,
                    offset=e.message.offset,
                    key=e.message.key,
                    value=e.message.value,
                    headers=_headers(e.message.headers),
                )
                for e in events
            ]
            # Shielded: a stop that cancels the agent must not abandon a batch that
            # faust will ack anyway; stop() waits for these tasks.
            task = asyncio.ensure_future(self._handle(records))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            await asyncio.shield(task)

    async def _handle(self, records: Sequence[InboxRecord]) -> None:
        async with self._busy:
            await handle_batch(self.processor, records)
            self.processed += len(records)

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"FaustInbox.start() called when {self._state}")
        self._state = "starting"
        recovered = await self.processor.recover()
        if recovered:
            log.info("re-published %d outbox steps left by an earlier crash", recovered)
        await self.app.start()
        metrics.watch("inbox_lag", self._refresh_lag)
        metrics.watch("node_runs_in_flight", self._refresh_in_flight)
        self._state = "started"

    async def _refresh_lag(self) -> None:
        await metrics.refresh_inbox_lag(self.app.consumer)

    async def _refresh_in_flight(self) -> None:
        await metrics.refresh_in_flight(self.processor.store.client, self.processor.store.tags())

    async def stop(self) -> None:
        if self._state in {"new", "stopped"}:
            self._state = "stopped"
            return
        self._state = "stopping"
        metrics.unwatch("inbox_lag", self._refresh_lag)
        metrics.unwatch("node_runs_in_flight", self._refresh_in_flight)
        # Holding the lock, no new batch starts while faust leaves the group; batches it
        # acked on the way out are still applied below, before Redis and Kafka close.
        async with self._busy:
            await self.app.stop()
        if self._inflight:
            await asyncio.gather(*self._inflight)
        self._state = "stopped"
