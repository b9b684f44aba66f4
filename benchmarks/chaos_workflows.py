"""The chaos run's workflows, and the ids their runs, node runs and effects must have.

* ``chaos-chain`` (the load): trigger → CONDITION → KAFKA (a worker, whose handler
  calls the receiver) → WEBHOOK (the executor, calling the receiver) → UPSERT_ENTITY
  (the built-in entity executor) writing an entity of ``chaos-item``.
* ``chaos-on-item``: an EVENT_TRIGGER on each ``chaos-item`` created, so the trigger
  matcher turns every chain run's entity event into one run.
* ``chaos-tick-0`` .. ``chaos-tick-4``: SCHEDULE_TRIGGERs five minutes apart each (the
  closest a schedule may fire) and a minute apart from one another, so the scheduler
  fires one tick a minute.

Every id is derived (node runs from their run, event ids from their node run, event
and schedule runs from their event or tick): the checks compute what must exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from croniter import croniter

from switchyard.engine.scheduler import schedule_run_id
from switchyard.schemas.entity_rules import node_entity_identifier, node_event_id
from switchyard.schemas.ids import derived_run_id, node_run_id

CHAIN = "chaos-chain"
ON_ITEM = "chaos-on-item"
TICKS = tuple(f"chaos-tick-{m}" for m in range(5))
BLUEPRINT = "chaos-item"
BLUEPRINT_SCHEMA = {"properties": {"n": {"type": "number"}}}
# Where the receiver takes each kind of effect.
HOOK_PATH = "hook"
WORK_PATH = "work"
LATE_PATH = "late"
# The on-item run's late node: handed over, then never answered, so its deadline's
# timer fires and completes it (onTimeout: continue): a timer firing under the chaos.
LATE_TIMEOUT_S = 2


def chain_workflow(hook_url: str) -> dict[str, Any]:
    return {
        "identifier": CHAIN,
        "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {
                "properties": {"n": {"type": "number"}}, "required": ["n"]}}},
            {"identifier": "check", "config": {"type": "CONDITION", "outlets": [
                {"identifier": "go", "title": "Go", "expression": ".outputs.trigger.n >= 0"}]}},
            # A deadline that never passes here: every run arms a timer and cancels it.
            {"identifier": "work", "config": {"type": "KAFKA", "timeoutSeconds": 900,
                                              "payload": {"n": "{{ .outputs.trigger.n }}"}}},
            {"identifier": "notify", "config": {
                "type": "WEBHOOK", "url": hook_url, "method": "POST",
                "body": {"n": "{{ .outputs.work.echo.n }}"}}},
            {"identifier": "record", "config": {
                "type": "UPSERT_ENTITY", "blueprintIdentifier": BLUEPRINT,
                "mapping": {"properties": {"n": "{{ .outputs.trigger.n }}"}}}},
        ],
        "connections": [
            {"sourceIdentifier": "trigger", "targetIdentifier": "check"},
            {"sourceIdentifier": "check", "targetIdentifier": "work",
             "sourceOutletIdentifier": "go"},
            {"sourceIdentifier": "work", "targetIdentifier": "notify"},
            {"sourceIdentifier": "notify", "targetIdentifier": "record"},
        ],
    }  # fmt: skip


def _ends(identifier: str, trigger: dict[str, Any]) -> dict[str, Any]:
    """A workflow of ``trigger`` and one CONDITION: a run the engine completes itself."""
    return {
        "identifier": identifier,
        "nodes": [
            {"identifier": "trigger", "config": trigger},
            {"identifier": "seen", "config": {"type": "CONDITION", "outlets": [
                {"identifier": "yes", "title": "Yes", "expression": "true"}]}},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "seen"}],
    }  # fmt: skip


def on_item_workflow(late_url: str) -> dict[str, Any]:
    """Started by each chain run's entity event; ends on a not synchronized WEBHOOK
    nobody answers, completed by its deadline's timer."""
    event = {"type": "ENTITY_CREATED", "blueprintIdentifier": BLUEPRINT}
    workflow = _ends(ON_ITEM, {"type": "EVENT_TRIGGER", "event": event})
    workflow["nodes"].append({"identifier": "late", "config": {
        "type": "WEBHOOK", "url": late_url, "method": "POST", "synchronized": False,
        "timeoutSeconds": LATE_TIMEOUT_S, "onTimeout": "continue",
        "body": {"late": True}}})  # fmt: skip
    workflow["connections"].append(
        {"sourceIdentifier": "seen", "targetIdentifier": "late", "sourceOutletIdentifier": "yes"}
    )
    return workflow


def tick_workflows() -> list[dict[str, Any]]:
    return [_ends(name, {"type": "SCHEDULE_TRIGGER", "cron": tick_cron(name)}) for name in TICKS]


def tick_cron(workflow: str) -> str:
    return f"{workflow.rsplit('-', 1)[1]}-59/5 * * * *"


def all_workflows(url: Callable[[str], str], triggers: bool = True) -> list[dict[str, Any]]:
    """The chain; with ``triggers``, the workflows the scheduler and the matcher start.
    ``url(path)``: where the receiver takes the effects of ``path``."""
    return [
        chain_workflow(url(HOOK_PATH)),
        *((on_item_workflow(url(LATE_PATH)), *tick_workflows()) if triggers else ()),
    ]


# -- the ids ---------------------------------------------------------------------------
def work_key(run_id: str) -> str:
    """The Idempotency-Key of a chain run's KAFKA node (first attempt: no retries)."""
    return node_run_id(run_id, "work")


def hook_key(run_id: str) -> str:
    return node_run_id(run_id, "notify")


def record_node_run(run_id: str) -> str:
    return node_run_id(run_id, "record")


def item_identifier(run_id: str) -> str:
    return node_entity_identifier(record_node_run(run_id))


def item_event_id(run_id: str) -> str:
    return node_event_id(record_node_run(run_id))


def on_item_run(run_id: str) -> str:
    """The run the trigger matcher starts for chain run ``run_id``'s entity event."""
    return derived_run_id("event", item_event_id(run_id), ON_ITEM, "trigger")


def late_key(run_id: str) -> str:
    """The Idempotency-Key of the late node of chain run ``run_id``'s on-item run."""
    return node_run_id(on_item_run(run_id), "late")


def ticks_between(workflow: str, after: datetime, until: datetime) -> Iterator[datetime]:
    """The ticks of ``workflow``'s schedule in (after, until]."""
    ticks = croniter(tick_cron(workflow), after)
    while (tick := ticks.get_next(datetime)) <= until:
        yield tick


def tick_run(workflow: str, tick: datetime) -> str:
    return schedule_run_id(workflow, "trigger", tick)
