"""``InputResponded``: one responder's answer to an INPUT node run (see approval.py
for the node's lifecycle and output, and the rejections)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from switchyard.engine.machine.approval import responses_of
from switchyard.engine.machine.effects import Decision, RejectionCode, reject
from switchyard.engine.machine.outcome import apply_labels, complete
from switchyard.engine.machine.state import NodeRunState, RunState
from switchyard.engine.machine.step import Step
from switchyard.engine.machine.walk import advance
from switchyard.schemas import (
    InputConfig,
    InputResponded,
    InputsInvalid,
    format_timestamp,
    validate_inputs,
)
from switchyard.schemas.workflow import InputForm


def on_input_responded(state: RunState, step: Step, event: InputResponded) -> Decision:
    """Record one responder's answer; complete the node when an outlet has enough."""
    node_run = step.state.node_run(event.node_run_id)
    if node_run is None:
        return reject(
            state, "unknown_node_run", f"run {state.run_id} has no node run {event.node_run_id}"
        )
    node = step.graph.nodes.get(node_run.node)
    config = node.config if node is not None else None
    if not isinstance(config, InputConfig):
        return reject(state, "not_an_input", f"node run {event.node_run_id} is not an INPUT")
    answer = step.masker.value(_answer(event))
    earlier = _answer_of(node_run, event.submitted_by)
    if earlier == answer:
        why = f"{event.submitted_by}'s answer to {event.node_run_id} arrived again"
        return reject(state, "duplicate_response", why)
    if earlier is not None:
        return reject(state, "already_responded",
                      f"{event.submitted_by} already answered {event.node_run_id}")  # fmt: skip
    if not node_run.in_flight:
        return reject(
            state, "input_closed",
            f"node run {event.node_run_id} is COMPLETED ({node_run.result}); it takes no answers",
        )  # fmt: skip
    problem = _answer_problem(node_run, config, event)
    if problem is not None:
        return reject(state, *problem)
    _record(step, node_run, config, answer)
    advance(step)
    return step.decision()


def _answer(event: InputResponded) -> dict[str, Any]:
    return {
        "buttonIdentifier": event.button_identifier,
        "inputs": event.inputs,
        "submitterInfo": {
            "submittedBy": event.submitted_by,
            "submittedAt": format_timestamp(event.submitted_at),
        },
    }


def _answer_of(node_run: NodeRunState, responder: str) -> dict[str, Any] | None:
    for answer in responses_of(node_run):
        if answer.get("submitterInfo", {}).get("submittedBy") == responder:
            found: dict[str, Any] = answer
            return found
    return None


def _answer_problem(
    node_run: NodeRunState, config: InputConfig, event: InputResponded
) -> tuple[RejectionCode, str] | None:
    """Why the answer doesn't fit the form (checked again here: an external producer
    may write to the inbox directly), or None."""
    buttons = [button.identifier for button in config.user_inputs.buttons]
    if event.button_identifier not in buttons:
        return "unknown_button", (
            f"buttonIdentifier: {event.button_identifier!r} is not a button of"
            f" {node_run.node!r} (buttons: {', '.join(buttons)})"
        )
    form = node_run.output.get("userInputs") if isinstance(node_run.output, dict) else None
    try:
        validate_inputs(InputForm.model_validate(form), event.inputs, of="this form")
    except (InputsInvalid, ValidationError) as error:
        return "invalid_inputs", str(error)
    return None


def _record(
    step: Step, node_run: NodeRunState, config: InputConfig, answer: dict[str, Any]
) -> None:
    answers = [*responses_of(node_run), step.masker.value(answer)]
    node_run.output = {**node_run.output, "responses": answers}
    node_run.updated_at = step.now
    by = answer["submitterInfo"]["submittedBy"]
    step.log(node_run, "INFO", f"{by} answered {answer['buttonIdentifier']!r}")
    for outlet in config.outlets:
        count = sum(1 for a in answers if a["buttonIdentifier"] == outlet.identifier)
        if count >= outlet.num_of_responders:
            step.log(node_run, "INFO", f"outlet {outlet.identifier!r} has {count} answers")
            apply_labels(step, node_run, outlet.status_label, outlet.workflow_status_label)
            selected = {"identifier": outlet.identifier, "title": outlet.title}
            edges = step.graph.outlet_edge(node_run.node, outlet.identifier)
            complete(step, node_run, {"selectedOutlet": selected, "responses": answers}, edges)
            return
    step.emit("nodeRun.updated", node_run)
