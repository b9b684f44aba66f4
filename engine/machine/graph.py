"""An index over a workflow's connections, built once per decision."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

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
