"""The store's side of agent webhooks: the plan signs the envelope into the outbox for
<org id>.runs; the organization's settings say how the agent takes its work."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from switchyard.engine.machine.effects import Decision, PublishAgentRequest
from switchyard.engine.machine.state import RunState
from switchyard.engine.store.org import streamer_of
from switchyard.engine.store.plan import OutboxMessage, plan_decision
from switchyard.engine.store.slots import partition_tag
from switchyard.schemas.settings import Settings
from switchyard.topics.agent_envelope import compact, signature
from switchyard.topics.registry import TopicRegistry

RUN_ID = "wfr_AbCdEfGh12345678"
NOW = datetime(2026, 1, 28, 10, 0, 0, tzinfo=UTC)
MESSAGE = {"headers": {}, "payload": {"x": "é", "action": {"invocationMethod": {"agent": True}}},
           "context": {"runId": "wfnr_1"}}  # fmt: skip


def _state(step: int) -> RunState:
    return RunState(
        run_id=RUN_ID, workflow_identifier="wf", workflow_version=1, trigger="trigger",
        created_by="u", created_at=NOW, updated_at=NOW, step=step,
    )  # fmt: skip


def _outbox(settings: Settings, secret: str | None) -> list[OutboxMessage]:
    effect = PublishAgentRequest(id="wfnr_1:agent", message=MESSAGE, timestamp=1700000000)
    decision = Decision(state=_state(2), effects=(effect,))
    registry = TopicRegistry.from_settings(settings)
    plan = plan_decision(
        _state(1),
        decision,
        offset=3,
        registry=registry,
        tag=partition_tag(0, 12),
        agent_secret=secret,
    )
    return plan.outbox


def test_the_plan_signs_the_message_for_the_org_topic() -> None:
    [message] = _outbox(Settings(org_id="acme"), "s3cret")
    assert (message.topic, message.key) == ("acme.runs", RUN_ID)
    sent = json.loads(message.value)
    assert sent["headers"]["X-Port-Signature"] == signature("s3cret", 1700000000, compact(MESSAGE))
    # Through the outbox's JSON and back: the very same bytes.
    assert OutboxMessage.from_json(message.to_json()).value == message.value


def test_the_default_org_topic_is_switchyard_runs_and_ensure_creates_it() -> None:
    registry = TopicRegistry.from_settings(Settings())
    assert registry.agent_runs.name == "switchyard.runs"
    assert registry.agent_change_log.name == "switchyard.change.log"
    assert {registry.agent_runs, registry.agent_change_log} <= set(registry.all())
    [message] = _outbox(Settings(), None)
    assert message.topic == "switchyard.runs"
    assert json.loads(message.value)["headers"] == {}


def test_an_org_id_that_cant_name_a_topic_is_refused() -> None:
    with pytest.raises(ValueError, match="org_id"):
        Settings(org_id="my org")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "KAFKA"),
        (b"", "KAFKA"),
        (b'{"portAgentStreamerName": "POLLING"}', "POLLING"),
        ('{"portAgentStreamerName": "POLLING", "other": 1}', "POLLING"),
        (b'{"portAgentStreamerName": "KAFKA"}', "KAFKA"),
        (b'{"portAgentStreamerName": "polling"}', "KAFKA"),
        (b"not json", "KAFKA"),
        (b"[1, 2]", "KAFKA"),
    ],
)
def test_the_streamer_is_kafka_unless_the_settings_say_polling(
    raw: bytes | str | None, expected: str
) -> None:
    assert streamer_of(raw) == expected
