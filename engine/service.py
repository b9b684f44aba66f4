"""The engine process: Redis, the producer, the processor and its faust driver, wired.

``EngineService`` is an async context manager so that the CLI, the stack and the
tests run the very same thing. Templates are passed in (the CLI passes the
sandboxed jq engine; their lifecycle is the caller's).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from switchyard.engine.inbox import FaustInbox
from switchyard.engine.inbox_kafka import KafkaInbox
from switchyard.engine.processor import InboxProcessor
from switchyard.engine.store.client import connect, redis_client
from switchyard.engine.store.runs import RunStore
from switchyard.engine.store.upgrade import claim_partitions, claim_store_format
from switchyard.engine.store.workflows import WorkflowStore
from switchyard.engine.templates import Templates
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry

log = logging.getLogger("switchyard.engine")


def utc_now() -> datetime:
    return datetime.now(UTC)


class EngineService:
    """One engine process: consumes the inbox, applies runs, publishes effects."""

    def __init__(
        self,
        settings: Settings,
        templates: Templates,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.redis = redis_client(settings)
        self.producer = EventProducer(settings)
        self.processor = InboxProcessor(
            store=RunStore(self.redis, settings.inbox_partitions),
            workflows=WorkflowStore(self.redis),
            producer=self.producer,
            registry=TopicRegistry.from_settings(settings),
            templates=templates,
            secrets=settings.secrets,
            clock=clock,
            inbox_partitions=settings.inbox_partitions,
            default_node_timeout_s=settings.default_node_timeout_s,
            ai_configured=settings.ai_base_url is not None,
            email_configured=settings.smtp_host is not None,
            max_output_bytes=settings.node_output_max_bytes,
            max_message_bytes=settings.kafka_max_message_bytes,
            agent_secret=(
                settings.agent_client_secret.get_secret_value()
                if settings.agent_client_secret
                else None
            ),
        )
        self.inbox: KafkaInbox | FaustInbox = (
            KafkaInbox(settings, self.processor)
            if settings.engine_driver == "aiokafka"
            else FaustInbox(settings, self.processor)
        )

    async def start(self) -> None:
        # First: data newer than this code (or keys in another layout) must stop the
        # engine before it reads or writes anything, not be half-understood.
        await connect(self.redis)
        await claim_store_format(self.redis)
        if self.processor.agent_secret is None:
            log.warning(
                "SWITCHYARD_AGENT_CLIENT_SECRET is not set: messages for Port's execution "
                "agent go unsigned, and the agent fails their node runs"
            )
        await self.producer.start()
        inbox = self.processor.registry.inbox.name
        actual = await self.producer.partition_count(inbox)
        if actual != self.processor.inbox_partitions:
            # Producers route by the topic's real count (as Kafka's clients do); so
            # must the engine, or it would move every event back and forth.
            log.warning(
                "%s has %d partitions but SWITCHYARD_INBOX_PARTITIONS is %d; using %d",
                inbox, actual, self.processor.inbox_partitions, actual,
            )  # fmt: skip
            self.processor.inbox_partitions = actual
        # The run keys are tagged by partition: another count would miss every run.
        await claim_partitions(self.redis, self.processor.inbox_partitions)
        await self.inbox.start()

    async def stop(self) -> None:
        await self.inbox.stop()
        await self.producer.stop()
        await self.redis.aclose()

    async def __aenter__(self) -> EngineService:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
