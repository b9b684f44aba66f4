"""EVENT_TRIGGER rules: which workflows an entity event starts, and the run it starts.

Pure (no I/O): the trigger matcher (``engine/trigger_matcher.py``) feeds it entity
events and the published workflows, and produces what it returns.

* A trigger listens when it is published, names the event's blueprint, and its
  ``event.type`` is the event's (``ENTITY_CREATED`` for CREATE, ...) or
  ``ANY_ENTITY_CHANGE``.
* Its ``condition`` (jq ``expressions`` over ``{diff, action, context}``, combined
  with ``and``/``or``) must yield ``true``; an expression that fails is a refusal
  with jq's message, never a run started on a guess.
* The run's id is derived from the event id, the workflow and the trigger node, so
  a redelivered entity event starts no second run (the engine creates a run once).
* The chain guard: an event made by an event-triggered run's UPSERT_ENTITY carries
  that run's depth; the run it would start is one deeper, and past
  ``max_depth`` it is refused with the reason, so a workflow that writes what
  triggers it stops instead of recursing forever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from switchyard.schemas import EventTriggerConfig, Node, RunTriggered, Workflow, derived_run_id
from switchyard.schemas.entities import EntityEvent
from switchyard.schemas.workflow import EntityEventType

_LISTENED: dict[str, frozenset[EntityEventType]] = {
    "CREATE": frozenset({"ENTITY_CREATED", "ANY_ENTITY_CHANGE"}),
    "UPDATE": frozenset({"ENTITY_UPDATED", "ANY_ENTITY_CHANGE"}),
    "DELETE": frozenset({"ENTITY_DELETED", "ANY_ENTITY_CHANGE"}),
}

Evaluate = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Refused:
    """A trigger that listens to the event but starts no run, and why (logged)."""

    workflow_identifier: str
    node_identifier: str
    reason: str


def event_triggers(workflow: Workflow) -> list[Node]:
    """The workflow's EVENT_TRIGGER nodes (published or not)."""
    return [node for node in workflow.nodes if isinstance(node.config, EventTriggerConfig)]


def listens(config: EventTriggerConfig, event: EntityEvent) -> bool:
    """Whether the trigger's filter takes the event (its condition aside)."""
    return (
        config.published
        and config.event.blueprint_identifier == event.context.blueprint_identifier
        and config.event.type in _LISTENED[event.action]
    )


def trigger_output(event: EntityEvent) -> dict[str, Any]:
    """``{diff: {before, after}, action, context}``: what conditions read and what the
    trigger node outputs (``.outputs.trigger.diff.after...``)."""
    return {
        "diff": {"before": event.diff.before, "after": event.diff.after},
        "action": event.action,
        "context": {
            "blueprintIdentifier": event.context.blueprint_identifier,
            "entityIdentifier": event.context.entity_identifier,
        },
    }


def condition_problem(
    config: EventTriggerConfig, output: dict[str, Any], evaluate: Evaluate
) -> str | None:
    """None when the trigger's condition holds (or it has none), else why not."""
    condition = config.condition
    if condition is None:
        return None
    results = []
    for expression in condition.expressions:
        try:
            value = evaluate(expression, output)
        except Exception as error:  # a jq error or a bound hit: refuse, never guess
            return f"condition {expression!r} failed: {error}"
        results.append(value is True)
    held = all(results) if condition.combinator == "and" else any(results)
    return None if held else f"condition ({condition.combinator}) is not met"


def run_depth(event: EntityEvent) -> int:
    """The depth of a run this event starts: one more than the run that made it."""
    return (event.origin.depth if event.origin is not None else 0) + 1


def runs_for(
    event: EntityEvent,
    workflows: Iterable[Workflow],
    *,
    evaluate: Evaluate,
    created_by: str,
    max_depth: int,
    now: datetime,
) -> tuple[list[RunTriggered], list[Refused]]:
    """The runs ``event`` starts, and the listening triggers that refused it."""
    output = trigger_output(event)
    started: list[RunTriggered] = []
    refused: list[Refused] = []
    depth = run_depth(event)
    for workflow in workflows:
        for node in event_triggers(workflow):
            assert isinstance(node.config, EventTriggerConfig)
            if not listens(node.config, event):
                continue
            problem = condition_problem(node.config, output, evaluate)
            if problem is None and depth > max_depth:
                origin = event.origin
                problem = (
                    f"chain too deep: the event was made by run "
                    f"{origin.workflow_run_identifier if origin else '?'} of "
                    f"{origin.workflow_identifier if origin else '?'}, at depth {depth - 1}; "
                    f"at most {max_depth} event-triggered runs follow one another "
                    "(SWITCHYARD_TRIGGER_MAX_DEPTH)"
                )
            if problem is not None:
                refused.append(Refused(workflow.identifier, node.identifier, problem))
                continue
            started.append(
                RunTriggered(
                    run_id=derived_run_id("event", event.id, workflow.identifier, node.identifier),
                    workflow_identifier=workflow.identifier,
                    workflow_version=workflow.version,
                    node_identifier=node.identifier,
                    payload=output,
                    depth=depth,
                    created_by=created_by,
                    triggered_at=now,
                )
            )
    return started, refused
