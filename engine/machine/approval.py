"""INPUT nodes (approvals): the node run waits for its responders' answers.

When the run reaches an INPUT node, its ``description`` and ``userInputs`` are
rendered (without secrets: responders read them) and kept as the node run's output
while it waits, so that ``GET`` of the run and the respond endpoint see them::

    {"description": ..., "userInputs": <rendered form>, "responders": {users, roles,
     teams}, "responses": [<answer>, ...]}

Each ``InputResponded`` is one answer ``{buttonIdentifier, inputs, submitterInfo:
{submittedBy, submittedAt}}``, counted once per responder; the first outlet, in
declared order, whose button has ``numOfResponders`` answers completes the node
SUCCESS with ``{selectedOutlet: {identifier, title}, responses}`` and follows that
outlet's connection. Rejections:

| code | when | benign |
|---|---|---|
| ``not_an_input`` | the node run is not of an INPUT node | no |
| ``duplicate_response`` | this very answer again (at-least-once delivery) | yes |
| ``already_responded`` | the responder answered before, differently | no |
| ``input_closed`` | the node run is over (an answer that lost a race) | yes |
| ``unknown_button`` | not one of the form's buttons | no |
| ``invalid_inputs`` | inputs that don't fit the rendered form | no |

Notifications go out when the node starts waiting, through the webhook executor
(``notifications.py`` of the consumers): a failed one is a log line, never a failed
approval.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from switchyard.engine.machine.context import template_context
from switchyard.engine.machine.effects import Decision
from switchyard.engine.machine.notify import send_notifications
from switchyard.engine.machine.outcome import describe, fail
from switchyard.engine.machine.state import NodeRunState, RunState
from switchyard.engine.machine.step import Step
from switchyard.engine.templates import TemplatesUnavailable
from switchyard.schemas import (
    InputConfig,
    Node,
    NodeRunUpdated,
)
from switchyard.schemas.problems import problems_from
from switchyard.schemas.workflow import InputForm


def start_input(step: Step, node: Node, node_run: NodeRunState, config: InputConfig) -> None:
    """Render the form, keep it as the waiting node run's output, notify responders."""
    raw = {
        "description": config.description,
        "userInputs": config.user_inputs.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    # No secrets: the rendered form is shown to every responder.
    context = template_context(step.state, node_run, {})
    try:
        rendered = step.templates.render(raw, context)
    except TemplatesUnavailable:  # the engine is stopping: retry the event
        raise
    except Exception as error:  # a template plug-in's failure fails one node, no more
        fail(step, node_run, f"template failed: {describe(error)}")
        return
    try:
        form = InputForm.model_validate(rendered["userInputs"])
    except ValidationError as error:
        found = "; ".join(f"{path}: {message}" for path, message in problems_from(error))
        fail(step, node_run, f"userInputs: the rendered form is not valid ({found})")
        return
    description = rendered["description"]
    node_run.output = {
        "description": description if isinstance(description, str | None) else str(description),
        "userInputs": form.model_dump(mode="json", by_alias=True, exclude_none=True),
        "responders": config.responders.model_dump(
            mode="json", by_alias=True, exclude_none=True, include={"users", "roles", "teams"}
        ),
        "responses": [],
    }
    needs = ", ".join(
        f"{outlet.identifier!r} needs {outlet.num_of_responders}" for outlet in config.outlets
    )
    step.log(node_run, "INFO", f"waiting for responders ({needs})")
    send_notifications(step, node, node_run, config, node_run.output["description"])


def responses_of(node_run: NodeRunState) -> list[dict[str, Any]]:
    """The answers recorded on an INPUT node run (while waiting and after)."""
    output = node_run.output
    found = output.get("responses") if isinstance(output, dict) else None
    return found if isinstance(found, list) else []


def late_logs(
    state: RunState, step: Step, node_run: NodeRunState, event: NodeRunUpdated
) -> Decision:
    """A notification's log lines for an INPUT node run that has already ended (a
    responder was faster than the hook): appended, nothing else changes."""
    for entry in event.logs:
        step.log(node_run, entry.log_level, entry.log, entry.tags, entry.created_at)
    return step.decision()
