"""EVENT_TRIGGER rules without services: filters, conditions, run ids, the chain guard."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jq
import pytest

from switchyard.engine.event_triggers import condition_problem, listens, runs_for
from switchyard.schemas import EventTriggerConfig, Workflow, parse_workflow
from switchyard.schemas.entities import EntityEvent

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def evaluate(expression: str, context: Any) -> Any:
    """Bare jq, in process: the matcher's sandboxed templates evaluate the same way."""
    return jq.compile(expression).input_value(context).first()


def event(
    action: str = "UPDATE",
    blueprint: str = "service",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    origin_depth: int | None = None,
    event_id: str = "ev-1",
) -> EntityEvent:
    data: dict[str, Any] = {
        "id": event_id,
        "action": action,
        "diff": {
            "before": before if action != "CREATE" else None,
            "after": after if action != "DELETE" else None,
        },
        "context": {"blueprintIdentifier": blueprint, "entityIdentifier": "svc-a"},
        "by": "alice@example.com",
        "at": NOW.isoformat(),
    }
    if origin_depth is not None:
        data["origin"] = {
            "workflowIdentifier": "writer",
            "workflowRunIdentifier": "wfr_0000000000000000",
            "nodeRunIdentifier": "wfnr_0000000000000000",
            "depth": origin_depth,
        }
    return EntityEvent.model_validate(data)


def entity(tier: str, status: str = "up") -> dict[str, Any]:
    return {"identifier": "svc-a", "blueprint": "service",
            "properties": {"tier": tier, "status": status}}  # fmt: skip


def workflow(
    identifier: str = "on-change",
    kind: str = "ENTITY_UPDATED",
    blueprint: str = "service",
    condition: dict[str, Any] | None = None,
    published: bool = True,
) -> Workflow:
    trigger: dict[str, Any] = {
        "type": "EVENT_TRIGGER",
        "published": published,
        "event": {"type": kind, "blueprintIdentifier": blueprint},
    }
    if condition is not None:
        trigger["condition"] = condition
    return parse_workflow({
        "identifier": identifier, "version": 2,
        "nodes": [
            {"identifier": "trigger", "config": trigger},
            {"identifier": "work", "config": {"type": "KAFKA", "payload": {}}},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}],
    })  # fmt: skip


def config(wf: Workflow) -> EventTriggerConfig:
    node = wf.nodes[0].config
    assert isinstance(node, EventTriggerConfig)
    return node


def start(ev: EntityEvent, *wfs: Workflow, max_depth: int = 5) -> tuple[list[Any], list[Any]]:
    return runs_for(ev, wfs, evaluate=evaluate, created_by="automation",
                    max_depth=max_depth, now=NOW)  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "action", "expected"),
    [
        ("ENTITY_CREATED", "CREATE", True),
        ("ENTITY_CREATED", "UPDATE", False),
        ("ENTITY_UPDATED", "UPDATE", True),
        ("ENTITY_UPDATED", "DELETE", False),
        ("ENTITY_DELETED", "DELETE", True),
        ("ENTITY_DELETED", "CREATE", False),
        ("ANY_ENTITY_CHANGE", "CREATE", True),
        ("ANY_ENTITY_CHANGE", "UPDATE", True),
        ("ANY_ENTITY_CHANGE", "DELETE", True),
    ],
)
def test_the_event_type_filter(kind: str, action: str, expected: bool) -> None:
    ev = event(action, before=entity("low"), after=entity("high"))
    assert listens(config(workflow(kind=kind)), ev) is expected


def test_another_blueprint_or_an_unpublished_trigger_does_not_listen() -> None:
    ev = event(before=entity("low"), after=entity("high"))
    assert not listens(config(workflow(blueprint="team")), ev)
    assert not listens(config(workflow(published=False)), ev)


def test_conditions_combine_with_and_or() -> None:
    ev = event(before=entity("low", "up"), after=entity("critical", "down"))
    output = {"diff": ev.diff.model_dump(), "action": "UPDATE", "context": {}}
    tier = '.diff.after.properties.tier == "critical"'
    same = ".diff.before.properties.status == .diff.after.properties.status"
    both = config(workflow(condition={"type": "JQ", "expressions": [tier, same]}))
    either = config(
        workflow(condition={"type": "JQ", "expressions": [tier, same], "combinator": "or"})
    )
    assert condition_problem(both, output, evaluate) == "condition (and) is not met"
    assert condition_problem(either, output, evaluate) is None


def test_a_failing_condition_refuses_with_jq_message() -> None:
    wf = workflow(condition={"type": "JQ", "expressions": [".diff.after.properties | keys | .x"]})
    started, [refused] = start(event(before=entity("low"), after=entity("high")), wf)
    assert started == []
    assert refused.workflow_identifier == "on-change"
    assert "failed" in refused.reason
    assert ".x" in refused.reason


def test_a_match_starts_one_run_with_the_event_as_output() -> None:
    ev = event(before=entity("low"), after=entity("high"))
    matching = workflow()
    other = workflow("on-create", kind="ENTITY_CREATED")
    [run], refused = start(ev, matching, other)
    assert refused == []
    assert run.workflow_identifier == "on-change"
    assert run.workflow_version == 2
    assert run.node_identifier == "trigger"
    assert run.created_by == "automation"
    assert run.depth == 1
    assert run.payload == {
        "diff": {"before": entity("low"), "after": entity("high")},
        "action": "UPDATE",
        "context": {"blueprintIdentifier": "service", "entityIdentifier": "svc-a"},
    }


def test_the_run_id_is_a_function_of_the_event_workflow_and_trigger() -> None:
    ev = event(before=entity("low"), after=entity("high"))
    [first], _ = start(ev, workflow())
    [again], _ = start(ev, workflow())
    [other_event], _ = start(event(before=entity("low"), after=entity("high"), event_id="ev-2"),
                             workflow())  # fmt: skip
    [other_workflow], _ = start(ev, workflow("second"))
    assert first.run_id == again.run_id
    assert len({first.run_id, other_event.run_id, other_workflow.run_id}) == 3


def test_the_chain_guard_refuses_past_the_maximum_depth() -> None:
    wf = workflow()
    [run], _ = start(event(before=entity("a"), after=entity("b"), origin_depth=4), wf)
    assert run.depth == 5
    started, [refused] = start(event(before=entity("a"), after=entity("b"), origin_depth=5), wf)
    assert started == []
    assert "chain too deep" in refused.reason
    assert "at most 5" in refused.reason
    assert "SWITCHYARD_TRIGGER_MAX_DEPTH" in refused.reason
