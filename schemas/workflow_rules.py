"""The graph rules of SPEC §1 and :func:`parse_workflow`, the one door for definitions.

Every violation is reported (not just the first), each naming the offending node
or connection, so that one 422 tells the author everything to fix.
"""

from __future__ import annotations

from collections import defaultdict

from pydantic import ValidationError

from switchyard.schemas.errors import Problem, WorkflowInvalid
from switchyard.schemas.problems import problems_from
from switchyard.schemas.workflow import (
    SUPPORTED_TYPES,
    ConditionConfig,
    InputConfig,
    InputOutlet,
    Outlet,
    Workflow,
)

MAX_NODES = 100


def parse_workflow(data: object) -> Workflow:
    """Validate untrusted JSON (already decoded) into a :class:`Workflow`.

    Raises :class:`WorkflowInvalid` with every schema problem, or, when the schema
    holds, every graph-rule problem.
    """
    if isinstance(data, dict) and isinstance(data.get("nodes"), list):
        # Counted before pydantic so that the message says how many there are.
        count = len(data["nodes"])
        if count > MAX_NODES:
            raise WorkflowInvalid([("nodes", f"at most {MAX_NODES} nodes (got {count})")])
    try:
        workflow = Workflow.model_validate(data)
    except ValidationError as error:
        raise WorkflowInvalid(problems_from(error, tags=SUPPORTED_TYPES)) from None
    problems = graph_problems(workflow)
    if problems:
        raise WorkflowInvalid(problems)
    return workflow


def graph_problems(workflow: Workflow) -> list[Problem]:
    """Every graph rule ``workflow`` breaks; empty when it is runnable."""
    problems = _node_problems(workflow)
    ids = {node.identifier for node in workflow.nodes}
    problems += _endpoint_problems(workflow, ids)
    problems += _outgoing_problems(workflow, ids)
    if not problems:
        # A cycle search over dangling edges would only repeat the errors above.
        problems += _cycle_problems(workflow)
    return problems


def _node_problems(workflow: Workflow) -> list[Problem]:
    problems: list[Problem] = []
    if not any(node.is_trigger for node in workflow.nodes):
        problems.append(
            (
                "nodes",
                "at least one trigger node (SELF_SERVE_TRIGGER, EVENT_TRIGGER or SCHEDULE_TRIGGER)"
                " is required",
            )
        )
    first_index: dict[str, int] = {}
    for index, node in enumerate(workflow.nodes):
        if node.identifier in first_index:
            problems.append(
                (
                    f"nodes[{index}].identifier",
                    f"{node.identifier!r} is already used by nodes[{first_index[node.identifier]}]",
                )
            )
        first_index.setdefault(node.identifier, index)
        if isinstance(node.config, ConditionConfig | InputConfig):
            problems += _outlet_problems(index, node.config)
    return problems


def _outlet_problems(index: int, config: ConditionConfig | InputConfig) -> list[Problem]:
    """Outlet ids unique; an INPUT's outlets and buttons unique and matched one to one."""
    problems: list[Problem] = []
    where = f"nodes[{index}].config"
    seen: set[str] = set()
    outlets: list[Outlet | InputOutlet] = list(config.outlets)
    for o_index, outlet in enumerate(outlets):
        if outlet.identifier in seen:
            problems.append(
                (
                    f"{where}.outlets[{o_index}].identifier",
                    f"{outlet.identifier!r} is used by another outlet of this node",
                )
            )
        seen.add(outlet.identifier)
    if not isinstance(config, InputConfig):
        return problems
    buttons: set[str] = set()
    for b_index, button in enumerate(config.user_inputs.buttons):
        if button.identifier in buttons:
            problems.append(
                (
                    f"{where}.userInputs.buttons[{b_index}].identifier",
                    f"{button.identifier!r} is used by another button of this node",
                )
            )
        buttons.add(button.identifier)
    for o_index, outlet in enumerate(config.outlets):
        if outlet.identifier not in buttons:
            problems.append(
                (
                    f"{where}.outlets[{o_index}].identifier",
                    f"{outlet.identifier!r} names no button (an outlet is taken by the button "
                    f"of the same identifier; buttons: {', '.join(sorted(buttons))})",
                )
            )
    return problems


def _endpoint_problems(workflow: Workflow, ids: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    triggers = {node.identifier for node in workflow.nodes if node.is_trigger}
    for index, edge in enumerate(workflow.connections):
        where = f"connections[{index}]"
        for field, value in (
            ("sourceIdentifier", edge.source_identifier),
            ("targetIdentifier", edge.target_identifier),
        ):
            if value not in ids:
                problems.append((f"{where}.{field}", f"{value!r} names no node"))
        if edge.source_identifier == edge.target_identifier:
            problems.append((where, f"{edge.source_identifier!r} connects to itself"))
        if edge.target_identifier in triggers:
            problems.append(
                (
                    f"{where}.targetIdentifier",
                    f"{edge.target_identifier!r} is a trigger; a trigger cannot be a target",
                )
            )
    return problems


def _outgoing_problems(workflow: Workflow, ids: set[str]) -> list[Problem]:
    """Rules on what may leave a node: one edge, or one per outlet (or the fallback)."""
    problems: list[Problem] = []
    by_source: dict[str, list[int]] = defaultdict(list)
    for index, edge in enumerate(workflow.connections):
        by_source[edge.source_identifier].append(index)
    for n_index, node in enumerate(workflow.nodes):
        edges = by_source.get(node.identifier, [])
        if isinstance(node.config, ConditionConfig | InputConfig):
            problems += _branch_edges(workflow, node.config, edges)
            continue
        if len(edges) > 1:
            listed = ", ".join(f"connections[{i}]" for i in edges)
            problems.append(
                (
                    f"nodes[{n_index}]",
                    f"{node.identifier!r} is not a CONDITION and has {len(edges)} outgoing"
                    f" connections ({listed}); at most one is allowed",
                )
            )
        for index in edges:
            edge = workflow.connections[index]
            if edge.source_outlet_identifier is not None:
                problems.append(
                    (
                        f"connections[{index}].sourceOutletIdentifier",
                        f"{node.identifier!r} is not a CONDITION or INPUT; it has no outlets",
                    )
                )
            if edge.fallback:
                problems.append(
                    (
                        f"connections[{index}].fallback",
                        f"{node.identifier!r} is not a CONDITION; only a CONDITION has a fallback",
                    )
                )
    return problems


def _branch_edges(
    workflow: Workflow, config: ConditionConfig | InputConfig, edges: list[int]
) -> list[Problem]:
    """Edges out of a CONDITION (by outlet, or its fallback) or an INPUT (by outlet)."""
    problems: list[Problem] = []
    outlets = {outlet.identifier for outlet in config.outlets}
    used: dict[str, int] = {}
    for index in edges:
        edge = workflow.connections[index]
        where = f"connections[{index}]"
        outlet = edge.source_outlet_identifier
        if isinstance(config, InputConfig) and (edge.fallback or outlet is None):
            problems.append(
                (
                    f"{where}.fallback" if edge.fallback else where,
                    f"leaves INPUT {edge.source_identifier!r}: set sourceOutletIdentifier (one"
                    f" of {', '.join(sorted(outlets))}); an INPUT has no fallback",
                )
            )
            continue
        if outlet is not None and edge.fallback:
            problems.append((where, "sets both sourceOutletIdentifier and fallback; give one"))
            continue
        if outlet is None and not edge.fallback:
            problems.append(
                (
                    where,
                    f"leaves CONDITION {edge.source_identifier!r}: set sourceOutletIdentifier"
                    f" (one of {', '.join(sorted(outlets))}) or fallback: true",
                )
            )
            continue
        if outlet is not None and outlet not in outlets:
            problems.append(
                (
                    f"{where}.sourceOutletIdentifier",
                    f"{outlet!r} is not an outlet of {edge.source_identifier!r}"
                    f" (outlets: {', '.join(sorted(outlets))})",
                )
            )
            continue
        key = outlet if outlet is not None else "fallback"
        if key in used:
            problems.append(
                (
                    where,
                    f"{'outlet ' + repr(key) if outlet else 'the fallback'} of"
                    f" {edge.source_identifier!r} already has connections[{used[key]}]",
                )
            )
        used.setdefault(key, index)
    return problems


def _cycle_problems(workflow: Workflow) -> list[Problem]:
    """One problem per cycle found by a depth-first search, naming its nodes in order."""
    successors: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for index, edge in enumerate(workflow.connections):
        successors[edge.source_identifier].append((index, edge.target_identifier))
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    problems: list[Problem] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for index, target in successors.get(node, []):
            if state.get(target) == 1:
                loop = [*path[path.index(target) :], target]
                problems.append((f"connections[{index}]", "closes a cycle " + " → ".join(loop)))
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in workflow.nodes:
        if node.identifier not in state:
            visit(node.identifier, [node.identifier])
    return problems
