"""A workflow's graph is built once per workflow object (every decision needs it), and
another object, even an equal one, gets its own."""

from __future__ import annotations

from switchyard.engine.machine.graph import Graph

from .conftest import chain, trigger_node


def test_a_workflow_objects_graph_is_built_once() -> None:
    workflow = chain(trigger_node(), {"identifier": "a", "config": {"type": "KAFKA"}})
    graph = Graph.of(workflow)
    assert Graph.of(workflow) is graph
    assert graph.edges_in("a") == [0]
    assert graph.edges_out("trigger") == [0]


def test_another_workflow_object_gets_its_own_graph() -> None:
    one = chain(trigger_node(), {"identifier": "a", "config": {"type": "KAFKA"}})
    other = chain(
        trigger_node(),
        {"identifier": "b", "config": {"type": "KAFKA"}},
        {"identifier": "a", "config": {"type": "KAFKA"}},
    )
    twin = chain(trigger_node(), {"identifier": "a", "config": {"type": "KAFKA"}})
    assert Graph.of(other).edges_in("a") == [1]
    assert Graph.of(one).edges_in("a") == [0]
    assert Graph.of(twin) is not Graph.of(one)
    assert Graph.of(twin).workflow is twin
