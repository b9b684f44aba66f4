"""The handling of one event: a working copy of the state and the effects so far.

Handlers and the walk change ``step.state`` (a deep copy: the caller's state is never
touched) through the methods here, which keep the run events, ``seq`` and timestamps
consistent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from switchyard.engine.machine.context import Masker
from switchyard.engine.machine.effects import (
    AppendLogs,
    ClearPendingClaim,
    Decision,
    Effect,
    EmitRunEvent,
    RunFinished,
)
from switchyard.engine.machine.graph import Graph
from switchyard.engine.machine.state import NodeRunState, RunState
from switchyard.engine.templates import Templates
from switchyard.schemas import (
    LogLevel,
    Node,
    NodeRunLog,
    NodeRunResult,
    RunEvent,
    RunEventKind,
    RunResult,
    node_run_id,
)


@dataclass
class Step:
    state: RunState
    graph: Graph
    now: datetime
    templates: Templates
    secrets: Mapping[str, str]
    masker: Masker
    effects: list[Effect] = field(default_factory=list)
    logs: dict[str, list[NodeRunLog]] = field(default_factory=dict)

    # -- effects --------------------------------------------------------------------

    def add(self, effect: Effect) -> None:
        self.effects.append(effect)

    def emit(self, kind: RunEventKind, node_run: NodeRunState | None = None) -> None:
        """A run event for the run (``node_run`` None) or one of its node runs."""
        self.state.seq += 1
        self.state.updated_at = self.now
        source = node_run if node_run is not None else self.state
        event = RunEvent(
            run_id=self.state.run_id,
            seq=self.state.seq,
            kind=kind,
            node_run_id=node_run.id if node_run else None,
            node_identifier=node_run.node if node_run else None,
            status=source.status,
            result=source.result,
            at=self.now,
        )
        self.add(EmitRunEvent(id=f"{self.state.run_id}:event:{self.state.seq}", event=event))

    def log(
        self,
        node_run: NodeRunState,
        level: LogLevel,
        message: str,
        tags: Mapping[str, str] | None = None,
        at: datetime | None = None,
    ) -> None:
        """A log line for ``node_run``, masked; written by one AppendLogs per node run."""
        entry = NodeRunLog(
            log_level=level,
            log=self.masker.text(message),
            tags={k: self.masker.text(v) for k, v in (tags or {}).items()},
            created_at=at or self.now,
        )
        self.logs.setdefault(node_run.id, []).append(entry)

    def decision(self) -> Decision:
        # Logs first: a store applying effects in order has written them before it
        # publishes the events that make a reader look for them.
        log_effects: list[Effect] = [
            AppendLogs(
                id=f"{self.state.run_id}:{self.state.step}:logs:{nr_id}",
                run_id=self.state.run_id,
                node_run_id=nr_id,
                entries=entries,
            )
            for nr_id, entries in self.logs.items()
        ]
        return Decision(state=self.state, effects=(*log_effects, *self.effects))

    # -- node runs ------------------------------------------------------------------

    def new_node_run(self, node: Node) -> NodeRunState:
        node_run = NodeRunState(
            id=node_run_id(self.state.run_id, node.identifier, 1),
            node=node.identifier,
            created_at=self.now,
            updated_at=self.now,
        )
        self.state.node_runs.append(node_run)
        self.emit("nodeRun.created", node_run)
        return node_run

    def close_node_run(
        self, node_run: NodeRunState, result: NodeRunResult, output: Any = None
    ) -> None:
        """Mark ``node_run`` COMPLETED with ``result`` (``output`` stored masked if given)."""
        node_run.status = "COMPLETED"
        node_run.result = result
        if output is not None:
            node_run.output = self.masker.value(output)
        node_run.updated_at = node_run.completed_at = self.now
        if node_run.installation_id is not None:
            self.add(
                ClearPendingClaim(
                    id=f"{node_run.id}:unclaim",
                    installation_id=node_run.installation_id,
                    node_run_id=node_run.id,
                    run_id=self.state.run_id,
                )
            )
        self.emit("nodeRun.completed", node_run)

    def cancel_in_flight(self, reason: str, keep: NodeRunState | None = None) -> None:
        """End every IN_PROGRESS node run (but ``keep``) as CANCELLED, logging why."""
        for node_run in self.state.node_runs:
            if node_run.in_flight and node_run is not keep:
                self.log(node_run, "WARN", reason)
                self.close_node_run(node_run, "CANCELLED")

    # -- the run --------------------------------------------------------------------

    def finish_run(self, result: RunResult) -> None:
        """The run is over: nothing runs after this, whatever arrives later."""
        self.state.status = "COMPLETED"
        self.state.result = result
        self.state.completed_at = self.now
        self.emit("run.completed")
        self.add(
            RunFinished(
                id=f"{self.state.run_id}:finished",
                run_id=self.state.run_id,
                workflow_identifier=self.state.workflow_identifier,
                result=result,
                completed_at=self.now,
            )
        )
