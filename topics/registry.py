"""Every Kafka topic Switchyard uses: name, key, value, partitions, retention.

Names on the wire live here and nowhere else. The inbox's partition count is
fixed at creation: events are keyed by run id, and changing the count would move
a run's later events to another partition (and so another engine process).
"""

from __future__ import annotations

from dataclasses import dataclass

from switchyard.schemas.settings import Settings

_DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Topic:
    """One topic of the registry."""

    name: str
    key: str
    value: str  # the name of the message model in switchyard.schemas
    partitions: int
    retention_ms: int
    purpose: str

    def configs(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": "delete"}


@dataclass(frozen=True)
class TopicRegistry:
    """The topics of one deployment (names carry the settings' prefix)."""

    inbox: Topic
    node_run_requests: Topic
    webhook_requests: Topic
    ai_requests: Topic
    run_events: Topic
    dead_letter: Topic
    agent_runs: Topic
    agent_change_log: Topic
    entity_events: Topic
    entity_requests: Topic

    @classmethod
    def from_settings(cls, settings: Settings) -> TopicRegistry:
        prefix = settings.topic_prefix
        fanout = settings.inbox_partitions
        return cls(
            inbox=Topic(
                name=f"{prefix}inbox",
                key="run id (wfr_…)",
                value="InboxEvent",
                partitions=settings.inbox_partitions,
                retention_ms=7 * _DAY_MS,
                purpose="RunTriggered, NodeRunUpdated, RunCommand, TimerFired: the engine's input",
            ),
            node_run_requests=Topic(
                name=f"{prefix}node-run-requests",
                key="run id (wfr_…)",
                value="NodeRunRequest",
                partitions=fanout,
                retention_ms=7 * _DAY_MS,
                purpose="one message per KAFKA node run, for external consumers",
            ),
            webhook_requests=Topic(
                name=f"{prefix}webhook-requests",
                key="run id (wfr_…)",
                value="WebhookRequest",
                partitions=fanout,
                retention_ms=1 * _DAY_MS,
                purpose="WEBHOOK node runs, for the built-in webhook executor",
            ),
            ai_requests=Topic(
                name=f"{prefix}ai-requests",
                key="run id (wfr_…)",
                value="AiRequest",
                partitions=fanout,
                retention_ms=1 * _DAY_MS,
                purpose="AI and AI_AGENT node runs, for the built-in AI executor",
            ),
            run_events=Topic(
                name=f"{prefix}run-events",
                key="run id (wfr_…)",
                value="RunEvent",
                partitions=fanout,
                retention_ms=7 * _DAY_MS,
                purpose="every state change of a run or node run: audit, live views, subscribers",
            ),
            dead_letter=Topic(
                name=f"{prefix}dead-letter",
                key="the rejected message's key",
                value="DeadLetter",
                partitions=1,
                retention_ms=30 * _DAY_MS,
                purpose="messages the engine could not decode or had to reject, with the reason",
            ),
            entity_events=Topic(
                name=f"{prefix}entity-events",
                key="entity (<blueprint>/<identifier>)",
                value="EntityEvent",
                partitions=fanout,
                retention_ms=7 * _DAY_MS,
                purpose="every change of the entity store (API or UPSERT_ENTITY): event triggers",
            ),
            entity_requests=Topic(
                name=f"{prefix}entity-requests",
                key="run id (wfr_…)",
                value="EntityRequest",
                partitions=fanout,
                retention_ms=1 * _DAY_MS,
                purpose="UPSERT_ENTITY node runs, for the built-in entity executor",
            ),
            # Port's execution agent reads <org id>.runs and <org id>.change.log by those
            # names: no prefix (the org id tells deployments apart).
            agent_runs=Topic(
                name=f"{settings.org_id}.runs",
                key="run id (wfr_…)",
                value="agent envelope (docs/kafka.md)",
                partitions=fanout,
                retention_ms=7 * _DAY_MS,
                purpose="agent: true WEBHOOK node runs, signed, for Port's execution agent",
            ),
            agent_change_log=Topic(
                name=f"{settings.org_id}.change.log",
                key="none",
                value="none (Switchyard writes nothing)",
                partitions=1,
                retention_ms=1 * _DAY_MS,
                purpose="exists because Port's execution agent subscribes to it too",
            ),
        )

    def all(self) -> tuple[Topic, ...]:
        return (
            self.inbox,
            self.node_run_requests,
            self.webhook_requests,
            self.ai_requests,
            self.run_events,
            self.dead_letter,
            self.agent_runs,
            self.agent_change_log,
            self.entity_events,
            self.entity_requests,
        )
