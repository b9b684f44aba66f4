"""``decide``: the pure state machine's one entry point."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from switchyard.engine.machine.context import Masker
from switchyard.engine.machine.effects import Decision, reject
from switchyard.engine.machine.graph import Graph
from switchyard.engine.machine.handlers import (
    on_node_run_updated,
    on_run_command,
    on_timer_fired,
)
from switchyard.engine.machine.options import MachineOptions
from switchyard.engine.machine.responses import on_input_responded
from switchyard.engine.machine.state import RunState, clone_state
from switchyard.engine.machine.step import Step
from switchyard.engine.machine.trigger import on_run_triggered
from switchyard.engine.templates import Templates
from switchyard.schemas import (
    InboxEvent,
    InputResponded,
    NodeRunUpdated,
    RunCommand,
    RunTriggered,
    TimerFired,
    Workflow,
)
from switchyard.schemas.timestamps import as_utc

DEFAULT_OPTIONS = MachineOptions()
_Handler = Callable[[RunState, Step, Any], Decision]
# One handler per event type that needs an existing run (RunTriggered creates one).
_HANDLERS: dict[type, _Handler] = {
    NodeRunUpdated: on_node_run_updated,
    RunCommand: on_run_command,
    TimerFired: on_timer_fired,
    InputResponded: on_input_responded,
}


def decide(
    state: RunState | None,
    event: InboxEvent,
    *,
    workflow: Workflow,
    now: datetime,
    templates: Templates,
    secrets: Mapping[str, str],
    options: MachineOptions = DEFAULT_OPTIONS,
) -> Decision:
    """Apply ``event`` to a run's ``state`` (None: the run doesn't exist yet).

    ``workflow`` is the version the run is pinned to (for a trigger: the version to
    start), ``now`` the processor's clock, ``secrets`` the server's secrets,
    ``options`` what the server's configuration says (default deadlines...). Pure: no
    I/O, clock or randomness inside, ``state`` is not modified, and bad input gives a
    Decision with a ``rejection`` (state unchanged, no effects) rather than an error.
    """
    now = as_utc(now)
    graph = Graph.of(workflow)
    if isinstance(event, RunTriggered):
        return on_run_triggered(
            state, event, graph=graph, now=now, templates=templates, secrets=secrets,
            options=options,
        )  # fmt: skip
    handler = _HANDLERS.get(type(event))
    if handler is None:  # a caller that bypassed the types; refuse, don't crash
        return reject(state, "unknown_event", f"no handler for {type(event).__name__}")
    if state is None:
        return reject(None, "unknown_run", f"run {event.run_id} does not exist")
    if state.run_id != event.run_id:
        return reject(state, "wrong_run", f"event for {event.run_id} given run {state.run_id}")
    copy = clone_state(state)
    copy.step += 1
    step = Step(copy, graph, now, templates, secrets, Masker(secrets), options)
    return handler(state, step, event)
