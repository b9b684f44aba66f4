"""Fixtures of the machine tests: a jq Templates fake, a fixed clock, a run harness."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jq
import orjson
import pytest

from switchyard.engine.machine import Decision, RunState, decide, dump_state, problems
from switchyard.engine.machine.options import MachineOptions
from switchyard.engine.templates import TemplateError
from switchyard.schemas import (
    InboxEvent,
    NodeRunUpdated,
    RunCommand,
    RunTriggered,
    TimerFired,
    TimerPurpose,
    Workflow,
    node_run_id,
    parse_workflow,
    timer_id,
)

RUN_ID = "wfr_AbCdEfGh12345678"
START = datetime(2026, 1, 28, 10, 0, 0, tzinfo=UTC)
SECRETS = {"deploy-token": "s3cr3t-token-value"}
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


class JqTemplates:
    """The Templates protocol over the ``jq`` package, as its docstrings describe it."""

    def evaluate(self, expression: str, context: Any) -> Any:
        try:
            return jq.compile(expression).input_value(context).first()
        except StopIteration:
            return None
        except ValueError as error:
            raise TemplateError(expression, str(error).splitlines()[0]) from None

    def render(self, value: Any, context: Any) -> Any:
        if isinstance(value, dict):
            return {k: self.render(v, context) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v, context) for v in value]
        if not isinstance(value, str):
            return value
        whole = _TEMPLATE.fullmatch(value.strip())
        if whole and value.strip().count("{{") == 1:
            return self.evaluate(whole.group(1).strip(), context)
        return _TEMPLATE.sub(lambda m: _text(self.evaluate(m.group(1).strip(), context)), value)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


class Harness:
    """One run driven through ``decide`` with a clock that moves only when told."""

    def __init__(self, workflow: Workflow, secrets: Mapping[str, str] | None = None) -> None:
        self.workflow = workflow
        self.secrets = dict(SECRETS if secrets is None else secrets)
        self.now = START
        self.state: RunState | None = None
        self.decisions: list[Decision] = []
        self.options = MachineOptions()

    def tick(self, seconds: float = 1) -> None:
        self.now += timedelta(seconds=seconds)

    def send(self, event: InboxEvent) -> Decision:
        before = dump_state(self.state) if self.state is not None else None
        decision = decide(
            self.state,
            event,
            workflow=self.workflow,
            now=self.now,
            templates=JqTemplates(),
            secrets=self.secrets,
            options=self.options,
        )
        after = dump_state(self.state) if self.state is not None else None
        assert before == after, "decide modified the state it was given"
        if decision.accepted:
            assert decision.state is not None
            assert problems(decision.state) == []
            self.state = decision.state
        else:
            assert decision.effects == ()
            assert decision.state is self.state
        self.decisions.append(decision)
        self.tick()
        return decision

    def trigger(self, inputs: dict[str, Any] | None = None, **extra: Any) -> Decision:
        return self.send(
            RunTriggered(
                run_id=RUN_ID,
                workflow_identifier=self.workflow.identifier,
                inputs=inputs or {},
                created_by="alice@example.com",
                triggered_at=self.now,
                **extra,
            )
        )

    def complete(self, node: str, result: str = "SUCCESS", **fields: Any) -> Decision:
        return self.update(node, status="COMPLETED", result=result, **fields)

    def update(self, node: str, **fields: Any) -> Decision:
        fields.setdefault("status", "IN_PROGRESS")
        return self.send(
            NodeRunUpdated(
                run_id=RUN_ID, node_run_id=node_run_id(RUN_ID, node), sent_at=self.now, **fields
            )
        )

    def cancel(self, force: bool = False) -> Decision:
        return self.send(RunCommand(run_id=RUN_ID, command="cancel", force=force, by="bob"))

    def fire(self, purpose: TimerPurpose, node: str | None = None, attempt: int = 1) -> Decision:
        """The timer service's TimerFired for the run's (or ``node``'s) timer."""
        nr_id = node_run_id(RUN_ID, node, attempt) if node else None
        return self.send(
            TimerFired(
                run_id=RUN_ID,
                timer_id=timer_id(RUN_ID, nr_id, purpose),
                node_run_id=nr_id,
                purpose=purpose,
                fired_at=self.now,
            )
        )

    @property
    def run(self) -> RunState:
        assert self.state is not None
        return self.state

    def node_run(self, node: str) -> Any:
        found = self.run.node_run_of(node)
        assert found is not None, f"{node} has no node run"
        return found

    def effects(self, kind: str, decision: Decision | None = None) -> list[Any]:
        chosen = decision or self.decisions[-1]
        return [e for e in chosen.effects if e.kind == kind]

    def logs(self, node: str) -> list[Any]:
        nr_id = node_run_id(RUN_ID, node)
        return [
            entry
            for decision in self.decisions
            for effect in decision.effects
            if effect.kind == "AppendLogs" and effect.node_run_id == nr_id
            for entry in effect.entries
        ]


def trigger_node(**inputs: Any) -> dict[str, Any]:
    return {
        "identifier": "trigger",
        "config": {
            "type": "SELF_SERVE_TRIGGER",
            "userInputs": {"properties": inputs, "required": list(inputs)},
        },
    }


def chain(*nodes: dict[str, Any], edges: list[dict[str, Any]] | None = None) -> Workflow:
    """A workflow of ``nodes``; without ``edges``, each node connects to the next."""
    if edges is None:
        edges = [
            {"sourceIdentifier": a["identifier"], "targetIdentifier": b["identifier"]}
            for a, b in itertools.pairwise(nodes)
        ]
    return parse_workflow({"identifier": "wf", "version": 3, "nodes": nodes, "connections": edges})


@pytest.fixture
def templates() -> JqTemplates:
    return JqTemplates()
