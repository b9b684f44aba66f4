"""The graph walk: which nodes run next, and when the run is over.

Join semantics (fan-in), with dead-path elimination: a node runs once, when every
connection into it is settled (its source has completed or is dead) and at least one
of them was taken. When all are settled and none was taken the node is dead, and so
are its outgoing connections, which settles them for the nodes downstream. Triggers
that did not fire, and nodes with no incoming connection, are dead from the start.

Because a non-branching node has at most one outgoing connection and a CONDITION
takes at most one, a run in fact walks a single path, and a join node runs as soon
as the path reaches it (the other predecessors are dead by then); the rule above is
what makes that hold without special cases, and would still hold with fan-out.
"""

from __future__ import annotations

from collections.abc import Mapping

from switchyard.engine.machine.nodes import start_node
from switchyard.engine.machine.state import NodeRunState
from switchyard.engine.machine.step import Step
from switchyard.schemas import Node


def advance(step: Step) -> None:
    """Start every ready node (CONDITIONs complete at once, so repeat), then end the
    run if nothing is left in flight: SUCCESS, or CANCELLED while CANCELLING."""
    state = step.state
    while _walking(step):
        ready = _settle(step)
        if not ready:
            break
        for node in ready:
            start_node(step, node)
            if not _walking(step):
                break
    if not state.is_completed and not state.waiting_on:
        step.finish_run("CANCELLED" if state.status == "CANCELLING" else "SUCCESS")


def _walking(step: Step) -> bool:
    """New nodes start only while the run is IN_PROGRESS (not CANCELLING, not over)."""
    return step.state.status == "IN_PROGRESS"


def _settle(step: Step) -> list[Node]:
    """Mark newly dead nodes (to a fixpoint) and return the nodes ready to run."""
    ready: list[Node] = []
    # Each node's latest node run, looked up for every node and each of its sources
    # per pass: one dict instead of a scan of the node runs per lookup.
    latest = {nr.node: nr for nr in step.state.node_runs}
    changed = True
    while changed:
        changed = False
        for node in step.graph.workflow.nodes:
            verdict = _verdict(step, node.identifier, latest)
            if verdict == "dead":
                step.state.dead.append(node.identifier)
                changed = True
            elif verdict == "ready" and node not in ready:
                ready.append(node)
    return ready


def _verdict(step: Step, node: str, latest: Mapping[str, NodeRunState]) -> str | None:
    """``ready``, ``dead``, or None (undecided, running, done or dead already)."""
    state, graph = step.state, step.graph
    if node in latest or node in state.dead:
        return None
    edges = graph.edges_in(node)
    if not all(_settled(step, graph.source(edge), latest) for edge in edges):
        return None
    return "ready" if any(edge in state.taken for edge in edges) else "dead"


def _settled(step: Step, node: str, latest: Mapping[str, NodeRunState]) -> bool:
    if node in step.state.dead:
        return True
    node_run = latest.get(node)
    # A failed attempt whose retry is pending is not over: the node is still running.
    return node_run is not None and not node_run.in_flight and not node_run.retry_pending
