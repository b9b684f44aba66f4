"""EVENT_TRIGGER, SCHEDULE_TRIGGER and UPSERT_ENTITY definitions: what is accepted and
what is refused, naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from switchyard.schemas import WorkflowInvalid, parse_workflow


def with_trigger(config: dict[str, Any], then: dict[str, Any] | None = None) -> dict[str, Any]:
    nodes = [{"identifier": "trigger", "config": config}]
    edges = []
    if then is not None:
        nodes.append({"identifier": "next", "config": then})
        edges.append({"sourceIdentifier": "trigger", "targetIdentifier": "next"})
    return {"identifier": "wf", "nodes": nodes, "connections": edges}


def problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(WorkflowInvalid) as caught:
        parse_workflow(data)
    return dict(caught.value.problems)


EVENT = {"type": "EVENT_TRIGGER", "event": {"type": "ENTITY_UPDATED", "blueprintIdentifier": "svc"}}


def test_event_and_schedule_triggers_alone_make_a_workflow() -> None:
    assert parse_workflow(with_trigger(EVENT)).nodes[0].is_trigger
    schedule = parse_workflow(with_trigger({"type": "SCHEDULE_TRIGGER", "cron": "0  9 * * 1-5"}))
    assert schedule.nodes[0].config.model_dump()["cron"] == "0 9 * * 1-5"  # spaces folded


def test_an_event_trigger_needs_its_event_and_a_known_type() -> None:
    found = problems(with_trigger({"type": "EVENT_TRIGGER"}))
    assert found == {"nodes[0].config.event": "is required"}
    kind = problems(with_trigger({**EVENT, "event": {"type": "ENTITY_RENAMED",
                                                     "blueprintIdentifier": "svc"}}))  # fmt: skip
    assert "(got 'ENTITY_RENAMED')" in kind["nodes[0].config.event.type"]
    no_blueprint = problems(with_trigger({**EVENT, "event": {"type": "ENTITY_CREATED"}}))
    assert no_blueprint == {"nodes[0].config.event.blueprintIdentifier": "is required"}


def test_timer_expired_is_refused_saying_why() -> None:
    found = problems(
        with_trigger(
            {
                **EVENT,
                "event": {
                    "type": "TIMER_EXPIRED",
                    "blueprintIdentifier": "svc",
                    "propertyIdentifier": "due",
                },
            }
        )
    )
    assert "TIMER_EXPIRED needs timer properties" in found["nodes[0].config.event.type"]


def test_a_condition_needs_expressions() -> None:
    found = problems(with_trigger({**EVENT, "condition": {"type": "JQ", "expressions": []}}))
    assert "at least 1" in found["nodes[0].config.condition.expressions"]


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("* * * * *", "fires every 60 s at its closest; schedules fire at most every 5 minutes"),
        ("*/4 * * * *", "fires every 240 s"),
        ("0,3 9 * * *", "fires every 180 s"),
        ("61 * * * *", "is not a cron expression"),
        ("every day", "is not a cron expression"),
    ],
)
def test_a_schedule_tighter_than_five_minutes_or_malformed_is_refused(cron: str, says: str) -> None:
    found = problems(with_trigger({"type": "SCHEDULE_TRIGGER", "cron": cron}))
    assert says in found["nodes[0].config.cron"]


@pytest.mark.parametrize(
    "cron", ["*/5 * * * *", "@hourly", "@daily", "0 9 * * 1-5", "*/10 * * * * 30"]
)
def test_schedules_port_accepts_are_accepted(cron: str) -> None:
    parse_workflow(with_trigger({"type": "SCHEDULE_TRIGGER", "cron": cron}))


def test_upsert_entity_needs_a_blueprint_and_takes_partial_mappings() -> None:
    found = problems(with_trigger(EVENT, {"type": "UPSERT_ENTITY", "mapping": {}}))
    assert found == {"nodes[1].config.blueprintIdentifier": "is required"}
    workflow = parse_workflow(with_trigger(EVENT, {
        "type": "UPSERT_ENTITY", "blueprintIdentifier": "{{ .outputs.trigger.context.entity }}",
        "mapping": {"team": "platform", "relations": "{{ .outputs.trigger.diff.after.relations }}"},
    }))  # fmt: skip
    assert workflow.nodes[1].type == "UPSERT_ENTITY"
    unknown = problems(with_trigger(EVENT, {"type": "UPSERT_ENTITY", "blueprintIdentifier": "b",
                                            "mapping": {"colour": "red"}}))  # fmt: skip
    assert unknown == {"nodes[1].config.mapping.colour": "is not a known field"}
