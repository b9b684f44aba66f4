"""One handler per inbox event type. Each returns a Decision; bad input is a Rejection.

Cancel (``RunCommand``): graceful moves the run to CANCELLING, cancels at once the
node runs that wait on the outside world (async webhook, KAFKA, INTEGRATION_ACTION,
an INPUT's responders)
and lets a running synchronized webhook finish; the run then ends COMPLETED/CANCELLED
and nothing new starts. ``force`` cancels every in-flight node run at once. Updates
that arrive for a cancelled node run are rejected as ``node_run_frozen``.
"""

from __future__ import annotations

from switchyard.engine.machine.approval import late_logs, responses_of
from switchyard.engine.machine.effects import Decision, reject
from switchyard.engine.machine.nodes import start_node
from switchyard.engine.machine.outcome import FailureCause, cancelled, complete, fail
from switchyard.engine.machine.rerun import on_rerun
from switchyard.engine.machine.state import NodeRunState, RunState
from switchyard.engine.machine.step import Step
from switchyard.engine.machine.walk import advance
from switchyard.schemas import (
    InputConfig,
    NodeRunUpdated,
    RunCommand,
    TimerFired,
    TimerPurpose,
    WebhookConfig,
    timer_id,
)


def on_node_run_updated(state: RunState, step: Step, event: NodeRunUpdated) -> Decision:
    # Checks read the working copy; a rejection returns the caller's state untouched.
    node_run = step.state.node_run(event.node_run_id)
    if node_run is None:
        return reject(
            state, "unknown_node_run", f"run {state.run_id} has no node run {event.node_run_id}"
        )
    if not node_run.in_flight:
        if _late_notification(step, node_run, event):
            return late_logs(state, step, node_run, event)
        if node_run.timed_out:
            # The engine ended it at its deadline; the worker just learnt too late.
            return reject(
                state, "late_update",
                f"node run {event.node_run_id} timed out at its deadline; this report came late",
            )  # fmt: skip
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
    if (event.status != "IN_PROGRESS" or event.output is not None) and _is_input(step, node_run):
        return reject(
            state, "input_needs_response",
            f"node run {event.node_run_id} is an INPUT: its responders complete it "
            "(POST /v1/workflows/nodes/runs/{id}/respond), a report may only add logs",
        )  # fmt: skip
    _apply_progress(step, node_run, event)
    if event.status == "IN_PROGRESS":
        step.emit("nodeRun.updated", node_run)
        return step.decision()
    raw = event.output if event.output is not None else (node_run.output or {})
    if event.result == "SUCCESS":
        complete(step, node_run, raw, step.graph.edges_out(node_run.node))
    elif event.result == "FAILED":
        # An executor's timed-out call reports {timeout: true}: a retry policy tells
        # timeouts from other failures.
        timed_out = isinstance(raw, dict) and raw.get("timeout") is True
        cause: FailureCause = "timeout" if timed_out else "failure"
        fail(step, node_run, _failure_message(event), raw, log=not _has_error_log(event),
             cause=cause)  # fmt: skip
    else:
        cancelled(step, node_run, raw)
    advance(step)
    return step.decision()


def _is_input(step: Step, node_run: NodeRunState) -> bool:
    node = step.graph.nodes.get(node_run.node)
    return node is not None and isinstance(node.config, InputConfig)


def _late_notification(step: Step, node_run: NodeRunState, event: NodeRunUpdated) -> bool:
    """Log lines of an INPUT's notification that arrive after the node run ended."""
    return (
        event.status == "IN_PROGRESS" and event.output is None and bool(event.logs)
        and _is_input(step, node_run)
    )  # fmt: skip


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
    if event.status_label is not None:
        node_run.status_label = event.status_label
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
    if event.command == "rerun":
        return on_rerun(state, step, event)
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
        elif node_run.retry_pending:
            step.drop_retry(node_run, f"the run was cancelled by {event.by}")
    advance(step)
    return step.decision()


def _runs_to_completion(step: Step, node_run: NodeRunState) -> bool:
    """A synchronized webhook is a call in progress: graceful cancel lets it finish."""
    config = step.graph.nodes[node_run.node].config
    return isinstance(config, WebhookConfig) and config.synchronized


def on_timer_fired(state: RunState, step: Step, event: TimerFired) -> Decision:
    """A due timer: a node's deadline, a retry's backoff, or the run's deadline. A timer
    that no longer matches the state (fired twice, or after what it was for ended) is
    a benign ``stale_timer``: at-least-once firing, exactly-once effect."""
    purpose = event.purpose or _purpose_of(event.timer_id)
    node_run = step.state.node_run(event.node_run_id) if event.node_run_id else None
    expected = timer_id(state.run_id, event.node_run_id, purpose) if purpose else None
    if purpose is None or event.timer_id != expected:
        return reject(state, "unknown_timer", f"run {state.run_id} has no timer {event.timer_id}")
    if purpose == "run_timeout" and step.state.deadline is not None and not state.is_completed:
        _time_out_run(step)
    elif purpose == "node_timeout" and node_run is not None and node_run.deadline is not None:
        time_out_node(step, node_run)
    elif purpose == "retry" and node_run is not None and node_run.retry_pending:
        _start_next_attempt(step, node_run)
    else:
        return reject(
            state, "stale_timer",
            f"timer {event.timer_id} of run {state.run_id} no longer applies",
        )  # fmt: skip
    advance(step)
    return step.decision()


def _purpose_of(timer: str) -> TimerPurpose | None:
    suffix = timer.rpartition(":")[2]
    return suffix if suffix in ("node_timeout", "run_timeout", "retry") else None  # type: ignore[return-value]


def _time_out_run(step: Step) -> None:
    workflow_timeout = step.graph.workflow.timeout_seconds or 0
    step.state.deadline = None  # fired: nothing to disarm
    step.cancel_in_flight(f"run timed out after {workflow_timeout:g} s", level="ERROR")
    step.finish_run("FAILED")


def time_out_node(step: Step, node_run: NodeRunState) -> None:
    """``node_run``'s deadline passed: FAILED "timed out after N s" (a retry, or
    ``onFailure``, follows), or SUCCESS ``{timeout: true}`` for a webhook whose
    ``onTimeout`` is ``continue``."""
    node = step.graph.nodes[node_run.node]
    seconds = (node_run.deadline - node_run.created_at).total_seconds() if node_run.deadline else 0
    node_run.deadline = None  # fired: nothing to disarm
    node_run.timed_out = True
    message = f"timed out after {seconds:g} s"
    if isinstance(node.config, WebhookConfig) and node.config.on_timeout == "continue":
        step.log(node_run, "WARN", f"{message}; onTimeout is continue")
        complete(step, node_run, {"timeout": True}, step.graph.edges_out(node.identifier))
        return
    raw: dict[str, object] = {"timeout": True}
    if isinstance(node.config, InputConfig):  # keep the answers it got in time
        raw["responses"] = responses_of(node_run)
    fail(step, node_run, message, raw, cause="timeout")


def _start_next_attempt(step: Step, failed: NodeRunState) -> None:
    failed.retry_at = None  # fired: nothing to disarm
    if step.state.status != "IN_PROGRESS":
        return
    node = step.graph.nodes[failed.node]
    start_node(step, node, (failed.attempt or 1) + 1, retry_of=failed.id)
