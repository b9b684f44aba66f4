"""The apply step's writes for live streams and entity pages: each run event on the
run's list (in seq order) and the capped all-runs stream, the run's list given a
lifetime at ``run.completed``, both packed (``event_record``), and a new run's entities
indexed (pure, no Redis)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from msgspec.structs import replace

from switchyard.engine.machine.effects import Decision, EmitRunEvent
from switchyard.engine.machine.state import NodeRunState, RunState
from switchyard.engine.store import event_record, keys
from switchyard.engine.store.plan import plan_decision
from switchyard.engine.store.run_entities import run_entities
from switchyard.schemas import RunEvent, Workflow, encode, node_run_id, parse_workflow
from switchyard.schemas.settings import Settings
from switchyard.topics.registry import TopicRegistry

RUN_ID = "wfr_AbCdEfGh12345678"
NOW = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
REGISTRY = TopicRegistry.from_settings(Settings())
TAG = keys.tag_of(RUN_ID, REGISTRY.inbox.partitions)
SCORE = str(int(NOW.timestamp() * 1000))
TEXT_NOW = "2026-12-01T10:00:00.000Z"


def _workflow(trigger: dict[str, Any]) -> Workflow:
    return parse_workflow({
        "identifier": "wf", "version": 1,
        "nodes": [{"identifier": "trigger", "config": trigger},
                  {"identifier": "work", "config": {"type": "KAFKA"}}],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}],
    })  # fmt: skip


SELF_SERVE = {
    "type": "SELF_SERVE_TRIGGER",
    "userInputs": {"properties": {
        "service": {"type": "string", "format": "entity", "blueprint": "service"},
        "deps": {"type": "array", "items": {"type": "string", "format": "entity",
                                            "blueprint": "service"}},
        "owner": {"type": "object", "format": "entity", "blueprint": "team"},
        "note": {"type": "string"},
    }},
}  # fmt: skip
EVENT = {
    "type": "EVENT_TRIGGER",
    "event": {"type": "ENTITY_CREATED", "blueprintIdentifier": "service"},
}


def _state(output: Any, *, seq: int = 0) -> RunState:
    trigger = NodeRunState(
        id=node_run_id(RUN_ID, "trigger"), node="trigger", status="COMPLETED",
        result="SUCCESS", output=output, created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    return RunState(
        run_id=RUN_ID, workflow_identifier="wf", workflow_version=1, trigger="trigger",
        created_by="u", created_at=NOW, updated_at=NOW, node_runs=[trigger], seq=seq,
    )  # fmt: skip


def test_a_self_service_runs_entities_are_its_entity_format_inputs() -> None:
    inputs = {"service": "svc-a", "deps": ["svc-b", "svc-a"], "owner": {"identifier": "ops"},
              "note": "not an entity"}  # fmt: skip
    assert run_entities(_state(inputs), _workflow(SELF_SERVE)) == [
        ("service", "svc-a"), ("service", "svc-b"), ("team", "ops"),
    ]  # fmt: skip


def test_an_event_triggered_runs_entity_is_the_one_its_event_names() -> None:
    context = {"blueprintIdentifier": "service", "entityIdentifier": "svc-z"}
    output = {"action": "CREATE", "diff": {"before": None, "after": {}}, "context": context}
    assert run_entities(_state(output), _workflow(EVENT)) == [("service", "svc-z")]


def test_the_creation_step_indexes_the_runs_entities_and_later_steps_do_not() -> None:
    workflow = _workflow(SELF_SERVE)
    new = _state({"service": "svc-a"})
    created = plan_decision(None, Decision(state=new), offset=1, registry=REGISTRY,
                            tag=TAG, workflow=workflow)  # fmt: skip
    entity_key = keys.runs_of_entity("service", "svc-a", TAG)
    assert ["ZADD", entity_key, SCORE, RUN_ID] in created.commands
    later = plan_decision(new, Decision(state=replace(new, step=1)), offset=2,
                          registry=REGISTRY, tag=TAG, workflow=workflow)  # fmt: skip
    assert not any(entity_key in command for command in later.commands)


def _event(seq: int, kind: str) -> RunEvent:
    return RunEvent.model_validate({
        "runId": RUN_ID, "seq": seq, "kind": kind,
        "status": "COMPLETED" if kind == "run.completed" else "IN_PROGRESS",
        "result": "SUCCESS" if kind == "run.completed" else None, "at": NOW,
    })  # fmt: skip


def test_a_steps_events_go_to_the_runs_list_and_one_stream_entry_and_completion_expires_it() -> (
    None
):
    events = [_event(7, "run.updated"), _event(8, "run.completed")]
    effects = tuple(EmitRunEvent(id=f"{RUN_ID}:event:{e.seq}", event=e) for e in events)
    old = _state({}, seq=6)
    plan = plan_decision(old, Decision(state=_state({}, seq=8), effects=effects), offset=3,
                         registry=REGISTRY, tag=TAG)  # fmt: skip
    streamed = [
        c for c in plan.commands if c[0] in ("RPUSH", "XADD", "EXPIRE") and "logs" not in c[1]
    ]
    own = keys.run_events(RUN_ID, TAG)
    cap = ["MAXLEN", "~", str(keys.runs_events_cap(REGISTRY.inbox.partitions)), "*"]
    # The partitions' streams together hold no more than one stream did in layout 1.
    assert keys.runs_events_cap(12) * 12 == keys.RUNS_EVENTS_MAXLEN
    first, second = (encode(e).decode() for e in events)
    packed = [event_record.pack(encode(e)) for e in events]
    assert packed == [
        f'[7,"run.updated",null,null,"IN_PROGRESS",null,"{TEXT_NOW}"]',
        f'[8,"run.completed",null,null,"COMPLETED","SUCCESS","{TEXT_NOW}"]',
    ]
    # One RPUSH and one stream entry for the step's events, in order.
    assert streamed == [
        ["RPUSH", own, *packed],
        ["XADD", keys.runs_events(TAG), *cap, "r", RUN_ID, "e", f"[{packed[0]},{packed[1]}]"],
        ["EXPIRE", own, str(keys.RUN_EVENTS_TTL_SECONDS)],
    ]
    # The topic gets the event's JSON, which the stored form gives back byte for byte.
    assert [m.value.decode() for m in plan.outbox] == [first, second]
    assert [event_record.unpack(RUN_ID, p).json.decode() for p in packed] == [first, second]
    entry = streamed[1][-1]
    assert [e.json.decode() for e in event_record.unpack_step(RUN_ID, entry)] == [first, second]


def test_a_step_without_events_writes_neither_list_nor_stream() -> None:
    old = _state({}, seq=6)
    plan = plan_decision(old, Decision(state=_state({}, seq=6)), offset=4,
                         registry=REGISTRY, tag=TAG)  # fmt: skip
    assert not [
        c for c in plan.commands if keys.runs_events(TAG) in c or keys.run_events(RUN_ID, TAG) in c
    ]
