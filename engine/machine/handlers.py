"""One handler per inbox event type. Each returns a Decision; bad input is a Rejection.

Cancel (``RunCommand``): graceful moves the run to CANCELLING, cancels at once the
node runs that wait on the outside world (async webhook, KAFKA, INTEGRATION_ACTION)
and lets a running synchronized webhook finish; the run then ends COMPLETED/CANCELLED
and nothing new starts. ``force`` cancels every in-flight node run at once. Updates
that arrive for a cancelled node run are rejected as ``node_run_frozen``.
"""

from __future__ import annotations

from switchyard.engine.machine.effects import Decision, Rejection, RejectionCode
from switchyard.engine.machine.outcome import cancelled, complete, fail
from switchyard.engine.machine.state import NodeRunState, RunState
from switchyard.engine.machine.step import Step
from switchyard.engine.machine.walk import advance
from switchyard.schemas import (
    NodeRunUpdated,
    RunCommand,
    TimerFired,
    WebhookConfig,
)


def reject(state: RunState | None, code: RejectionCode, reason: str) -> Decision:
    return Decision(state=state, rejection=Rejection(code, reason))


def on_node_run_updated(state: RunState, step: Step, event: NodeRunUpdated) -> Decision:
    # Checks read the working copy; a rejection returns the caller's state untouched.
    node_run = step.state.node_run(event.node_run_id)
    if node_run is None:
        return reject(
            state, "unknown_node_run", f"run {state.run_id} has no node run {event.node_run_id}"
        )
    if not node_run.in_flight:
        if event.status == "COMPLETED" and event.result == node_run.result:
            # A redelivered report (an executor or worker restarted mid-batch): the
            # same outcome again, which at-least-once delivery makes normal.
            return reject(
                state,
                "duplicate_update",
                f"node run {event.node_run_id} is already COMPLETED ({node_run.result})",
            )
        return reject(
            state,
            "node_run_frozen",
            f"node run {event.node_run_id} is COMPLETED ({node_run.result}); it can't change",
        )
    _apply_progress(step, node_run, event)
    if event.status == "IN_PROGRESS":
        step.emit("nodeRun.updated", node_run)
        return step.decision()
    raw = event.output if event.output is not None else (node_run.output or {})
    if event.result == "SUCCESS":
        complete(step, node_run, raw, step.graph.edges_out(node_run.node))
    elif event.result == "FAILED":
        fail(step, node_run, _failure_message(event), raw, log=not _has_error_log(event))
    else:
        cancelled(step, node_run, raw)
    advance(step)
    return step.decision()


def _apply_progress(step: Step, node_run: NodeRunState, event: NodeRunUpdated) -> None:
    """Logs appended; output, links and externalRunId replaced when given."""
    for entry in event.logs:
        step.log(node_run, entry.log_level, entry.log, entry.tags, entry.created_at)
    if event.output is not None:
        node_run.output = step.masker.value(event.output)
    if event.links is not None:
        node_run.links = [step.masker.text(link) for link in event.links]
    if event.external_run_id is not None:
        node_run.external_run_id = event.external_run_id
    node_run.updated_at = step.now


def _failure_message(event: NodeRunUpdated) -> str:
    """``error.message`` of the output, else the last ERROR log, else a generic line."""
    error = (event.output or {}).get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    errors = [entry.log for entry in event.logs if entry.log_level == "ERROR" and entry.log]
    return errors[-1] if errors else "the node run was reported FAILED"


def _has_error_log(event: NodeRunUpdated) -> bool:
    return any(entry.log_level == "ERROR" for entry in event.logs)


def on_run_command(state: RunState, step: Step, event: RunCommand) -> Decision:
    if state.is_completed:
        return reject(state, "run_completed", f"run {state.run_id} is already {state.result}")
    if state.status == "CANCELLING" and not event.force:
        return reject(
            state, "run_cancelling", f"run {state.run_id} is already cancelling (use force)"
        )
    if event.force:
        step.cancel_in_flight(f"cancelled by {event.by} (force)")
        step.finish_run("CANCELLED")
        return step.decision()
    step.state.status = "CANCELLING"
    step.emit("run.updated")
    for node_run in step.state.node_runs:
        if node_run.in_flight and not _runs_to_completion(step, node_run):
            step.log(node_run, "WARN", f"cancelled by {event.by}")
            step.close_node_run(node_run, "CANCELLED")
    advance(step)
    return step.decision()


def _runs_to_completion(step: Step, node_run: NodeRunState) -> bool:
    """A synchronized webhook is a call in progress: graceful cancel lets it finish."""
    config = step.graph.nodes[node_run.node].config
    return isinstance(config, WebhookConfig) and config.synchronized


def on_timer_fired(state: RunState, step: Step, event: TimerFired) -> Decision:
    # This version sets no timers (node timeouts and retries come later), so any
    # timer is one the machine doesn't know.
    return reject(state, "unknown_timer", f"run {state.run_id} has no timer {event.timer_id}")
