"""An index over a workflow's connections, built once per decision."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from switchyard.schemas import Node, Workflow


@dataclass(frozen=True)
class Graph:
    """Nodes by identifier and connection indexes in and out of each node."""

    workflow: Workflow
    nodes: dict[str, Node]
    incoming: dict[str, list[int]]
    outgoing: dict[str, list[int]]

    @classmethod
    def of(cls, workflow: Workflow) -> Graph:
        """The graph of ``workflow``, built once per workflow object: the workflow store
        hands out one parsed object per version, which nothing changes in place."""
        return _graph_of(_ByIdentity(workflow))

    @classmethod
    def build(cls, workflow: Workflow) -> Graph:
        incoming: dict[str, list[int]] = defaultdict(list)
        outgoing: dict[str, list[int]] = defaultdict(list)
        for index, edge in enumerate(workflow.connections):
            incoming[edge.target_identifier].append(index)
            outgoing[edge.source_identifier].append(index)
        nodes = {node.identifier: node for node in workflow.nodes}
        return cls(workflow, nodes, dict(incoming), dict(outgoing))

    def edges_out(self, node: str) -> list[int]:
        return self.outgoing.get(node, [])

    def edges_in(self, node: str) -> list[int]:
        return self.incoming.get(node, [])

    def source(self, edge: int) -> str:
        return self.workflow.connections[edge].source_identifier

    def target(self, edge: int) -> str:
        return self.workflow.connections[edge].target_identifier

    def outlet_edge(self, node: str, outlet: str | None) -> list[int]:
        """The edge leaving CONDITION ``node`` by ``outlet`` (None: the fallback), if any."""
        for index in self.edges_out(node):
            edge = self.workflow.connections[index]
            if outlet is None and edge.fallback:
                return [index]
            if outlet is not None and edge.source_outlet_identifier == outlet:
                return [index]
        return []


class _ByIdentity:
    """A workflow as a cache key by identity (a pydantic model has no hash): held by
    the cache, the object stays alive, so its id can't be reused by another."""

    __slots__ = ("workflow",)

    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow

    def __hash__(self) -> int:
        return id(self.workflow)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByIdentity) and other.workflow is self.workflow


# Building one costs about as much as a run event; every decision needs one.
@lru_cache(maxsize=256)
def _graph_of(key: _ByIdentity) -> Graph:
    return Graph.build(key.workflow)
