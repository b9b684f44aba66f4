"""The entities a run is associated with, recorded when it starts (pure).

A run is associated with the entity its ``EVENT_TRIGGER`` names (the trigger's
output ``context``) and with the entity-format inputs of a self-service trigger
(an input with ``format: "entity"`` and a ``blueprint``, or an array of them, whose
value is the entity identifier, or an object with one). The apply step of the run's
creation adds the run to ``sy:runs:entity:<blueprint>/<entity>`` for each
(:func:`switchyard.engine.store.keys.runs_of_entity`), which ``GET
/v1/workflows/runs?entity=`` reads.
"""

from __future__ import annotations

from typing import Any

from switchyard.engine.machine.state import RunState
from switchyard.schemas import EventTriggerConfig, SelfServeTriggerConfig, Workflow
from switchyard.schemas.user_inputs import InputProperty


def run_entities(state: RunState, workflow: Workflow) -> list[tuple[str, str]]:
    """``(blueprint, entity)`` pairs of the run's trigger, without repeats, in order."""
    trigger = next((n for n in workflow.nodes if n.identifier == state.trigger), None)
    first = state.node_run_of(state.trigger)
    if trigger is None or first is None or not isinstance(first.output, dict):
        return []
    output: dict[str, Any] = first.output
    found: list[tuple[str, str]] = []
    if isinstance(trigger.config, EventTriggerConfig):
        context = output.get("context")
        if isinstance(context, dict):
            _add(found, context.get("blueprintIdentifier"), context.get("entityIdentifier"))
    elif isinstance(trigger.config, SelfServeTriggerConfig):
        for name, prop in trigger.config.user_inputs.properties.items():
            if name in output:
                for blueprint, value in _entity_values(prop, output[name]):
                    _add(found, blueprint, value)
    return found


def _entity_values(prop: InputProperty, value: Any) -> list[tuple[Any, Any]]:
    extra = prop.model_extra or {}
    if prop.format == "entity":
        return [(extra.get("blueprint"), value)]
    items = prop.items or {}
    if prop.type == "array" and items.get("format") == "entity" and isinstance(value, list):
        return [(items.get("blueprint"), item) for item in value]
    return []


def _add(found: list[tuple[str, str]], blueprint: Any, value: Any) -> None:
    if isinstance(value, dict):
        value = value.get("identifier")
    if isinstance(blueprint, str) and blueprint and isinstance(value, str) and value:
        pair = (blueprint, value)
        if pair not in found:
            found.append(pair)
