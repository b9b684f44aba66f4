"""What one step of a run changed that an operator counts: the run started or finished,
node runs started or finished (by node type), and node runs in flight.

Pure and computed with the step's plan (``plan.py``), from the state before and
after, so the counts follow exactly what the apply script stores: the processor
records them only for plans the script applied (a redelivery, a duplicate or a
moved stray changes no state and counts nothing). The in-flight counts are the one
figure kept in Redis (``keys.node_runs_in_flight``, HINCRBY in the same atomic step),
because they must be right after a restart and across several engines.
"""

from __future__ import annotations

from typing import NamedTuple

from switchyard.engine.machine.state import NodeRunState, RunState
from switchyard.engine.store import keys
from switchyard.schemas import Workflow

UNKNOWN_TYPE = "UNKNOWN"  # a node its workflow version lacks; a result never set


class NodeRunChange(NamedTuple):
    """One node run that started or finished in the step (or both: a CONDITION)."""

    node_type: str
    started: bool
    result: str | None  # set when it finished in this step
    seconds: float  # createdAt → completedAt, when it finished


class Transitions(NamedTuple):
    """The run's and its node runs' changes in one step (tuples: built on every step)."""

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
    before = {nr.id: nr.status for nr in old.node_runs} if old is not None else {}
    types: dict[str, str] | None = None
    changes = []
    for nr in new.node_runs:
        was = before.get(nr.id)
        if was is None:
            if nr.reused_from is not None:
                continue
        elif was != "IN_PROGRESS" or nr.status == "IN_PROGRESS":
            continue  # unchanged, or finished before this step
        if types is None:
            types = _node_types(workflow)
        changes.append(_change(nr, was is None, types))
    run_started = old is None
    run_finished = new.result is not None and (old is None or old.result is None)
    if not (changes or run_started or run_finished):
        return None
    seconds = 0.0
    if run_finished:
        seconds = ((new.completed_at or new.updated_at) - new.created_at).total_seconds()
    return Transitions(
        new.workflow_identifier, run_started, new.result if run_finished else None, seconds,
        tuple(changes),
    )  # fmt: skip


def _change(nr: NodeRunState, started: bool, types: dict[str, str]) -> NodeRunChange:
    kind = types.get(nr.node, UNKNOWN_TYPE)
    if nr.status == "IN_PROGRESS":
        return NodeRunChange(kind, started, None, 0.0)
    seconds = ((nr.completed_at or nr.updated_at) - nr.created_at).total_seconds()
    return NodeRunChange(kind, started, nr.result or UNKNOWN_TYPE, seconds)


# Node types by identifier, per workflow version object (the store keeps one parsed
# object per version, so this is built once per version, not once per step).
_types: dict[int, tuple[Workflow, dict[str, str]]] = {}


def _node_types(workflow: Workflow | None) -> dict[str, str]:
    if workflow is None:
        return {}
    cached = _types.get(id(workflow))
    if cached is not None and cached[0] is workflow:
        return cached[1]
    if len(_types) >= 1024:
        _types.clear()
    found = {node.identifier: node.type for node in workflow.nodes}
    _types[id(workflow)] = (workflow, found)
    return found


def in_flight_commands(found: Transitions, tag: str) -> list[list[str]]:
    """The step's HINCRBYs of its partition's in-flight counts (none when it nets zero)."""
    return [
        ["HINCRBY", keys.node_runs_in_flight(tag), kind, str(delta)]
        for kind, delta in found.in_flight().items()
    ]
