"""What one step of a run changed that an operator counts: the run started or finished,
node runs started or finished (by node type), and node runs in flight.

Pure and computed with the step's plan (``plan.py``), from the state before and
after, so the counts follow exactly what the apply script stores: the processor
records them only for plans the script applied (a redelivery, a duplicate or a
moved stray changes no state and counts nothing). The in-flight counts are the one
figure kept in Redis (``keys.NODE_RUNS_IN_FLIGHT``, HINCRBY in the same atomic step),
because they must be right after a restart and across several engines.
"""

from __future__ import annotations

from dataclasses import dataclass

from switchyard.engine.machine.state import NodeRunState, RunState
from switchyard.engine.store import keys
from switchyard.schemas import Workflow

UNKNOWN_TYPE = "UNKNOWN"  # a node its workflow version lacks; a result never set


@dataclass(frozen=True, slots=True)
class NodeRunChange:
    """One node run that started or finished in the step (or both: a CONDITION)."""

    node_type: str
    started: bool
    result: str | None  # set when it finished in this step
    seconds: float  # createdAt → completedAt, when it finished


@dataclass(frozen=True, slots=True)
class Transitions:
    """The run's and its node runs' changes in one step."""

    workflow: str
    run_started: bool
    run_result: str | None  # set when the run finished in this step
    run_seconds: float  # createdAt → completedAt, when it finished
    node_runs: tuple[NodeRunChange, ...]

    def in_flight(self) -> dict[str, int]:
        """Node runs in flight by type, as this step changes them (no zero entries)."""
        deltas: dict[str, int] = {}
        for change in self.node_runs:
            delta = int(change.started) - int(change.result is not None)
            if delta:
                deltas[change.node_type] = deltas.get(change.node_type, 0) + delta
        return {kind: delta for kind, delta in deltas.items() if delta}


def transitions(
    old: RunState | None, new: RunState, workflow: Workflow | None
) -> Transitions | None:
    """The changes from ``old`` to ``new``, or None when nothing counted changed.

    A node run copied by a partial re-run (``reused_from``) was not run again: it
    counts as nothing.
    """
    before = {nr.id: nr for nr in old.node_runs} if old is not None else {}
    changes = []
    for nr in new.node_runs:
        previous = before.get(nr.id)
        started = previous is None and nr.reused_from is None
        finished = nr.status != "IN_PROGRESS" and (
            started or (previous is not None and previous.status == "IN_PROGRESS")
        )
        if started or finished:
            changes.append(_change(nr, started, finished, workflow))
    run_started = old is None
    run_finished = new.result is not None and (old is None or old.result is None)
    if not (changes or run_started or run_finished):
        return None
    seconds = 0.0
    if run_finished:
        seconds = ((new.completed_at or new.updated_at) - new.created_at).total_seconds()
    return Transitions(
        workflow=new.workflow_identifier, run_started=run_started,
        run_result=new.result if run_finished else None, run_seconds=seconds,
        node_runs=tuple(changes),
    )  # fmt: skip


def _change(
    nr: NodeRunState, started: bool, finished: bool, workflow: Workflow | None
) -> NodeRunChange:
    node = workflow.node(nr.node) if workflow is not None else None
    seconds = 0.0
    if finished:
        seconds = ((nr.completed_at or nr.updated_at) - nr.created_at).total_seconds()
    return NodeRunChange(
        node_type=node.type if node is not None else UNKNOWN_TYPE, started=started,
        result=(nr.result or UNKNOWN_TYPE) if finished else None, seconds=seconds,
    )  # fmt: skip


def in_flight_commands(found: Transitions) -> list[list[str]]:
    """The step's HINCRBYs of ``keys.NODE_RUNS_IN_FLIGHT`` (none when it nets zero)."""
    return [
        ["HINCRBY", keys.NODE_RUNS_IN_FLIGHT, kind, str(delta)]
        for kind, delta in found.in_flight().items()
    ]
