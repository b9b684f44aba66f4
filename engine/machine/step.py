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
    CancelTimer,
    ClearPendingClaim,
    Decision,
    Effect,
    EmitRunEvent,
    RunFinished,
    SetTimer,
)
from switchyard.engine.machine.graph import Graph
from switchyard.engine.machine.options import MachineOptions
from switchyard.engine.machine.state import NodeRunState, RunState
from switchyard.engine.templates import Templates
from switchyard.schemas import (
    ActionConfig,
    LogLevel,
    Node,
    NodeRunLog,
    NodeRunResult,
    RunEvent,
    RunEventKind,
    RunResult,
    TimerPurpose,
    node_run_id,
    timer_id,
)
from switchyard.schemas.timestamps import to_millis
from switchyard.schemas.trusted import trusted


@dataclass
class Step:
    state: RunState
    graph: Graph
    now: datetime
    templates: Templates
    secrets: Mapping[str, str]
    masker: Masker
    options: MachineOptions = field(default_factory=MachineOptions)
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
        # Values of the engine's own (see schemas.trusted): ids and statuses from the
        # state, ``kind`` from the code, the instant cut as validation would cut it.
        event = trusted(
            RunEvent,
            run_id=self.state.run_id,
            seq=self.state.seq,
            kind=kind,
            node_run_id=node_run.id if node_run else None,
            node_identifier=node_run.node if node_run else None,
            status=source.status,
            result=source.result,
            at=to_millis(self.now),
        )
        effect_id = f"{self.state.run_id}:event:{self.state.seq}"
        self.add(trusted(EmitRunEvent, id=effect_id, event=event))

    def log(
        self,
        node_run: NodeRunState,
        level: LogLevel,
        message: str,
        tags: Mapping[str, str] | None = None,
        at: datetime | None = None,
    ) -> None:
        """A log line for ``node_run``, masked; written by one AppendLogs per node run."""
        entry = trusted(
            NodeRunLog,
            log_level=level,
            log=self.masker.text(message),
            tags={k: self.masker.text(v) for k, v in (tags or {}).items()},
            created_at=to_millis(at or self.now),
        )
        self.logs.setdefault(node_run.id, []).append(entry)

    def decision(self) -> Decision:
        # Logs first: a store applying effects in order has written them before it
        # publishes the events that make a reader look for them.
        log_effects: list[Effect] = [
            trusted(
                AppendLogs,
                id=f"{self.state.run_id}:{self.state.step}:logs:{nr_id}",
                run_id=self.state.run_id,
                node_run_id=nr_id,
                entries=entries,
            )
            for nr_id, entries in self.logs.items()
        ]
        return Decision(state=self.state, effects=(*log_effects, *self.effects))

    # -- node runs ------------------------------------------------------------------

    def new_node_run(
        self, node: Node, attempt: int = 1, retry_of: str | None = None
    ) -> NodeRunState:
        """A node run of ``node``; action nodes carry their 1-based ``attempt``."""
        node_run = NodeRunState(
            id=node_run_id(self.state.run_id, node.identifier, attempt),
            node=node.identifier,
            created_at=self.now,
            updated_at=self.now,
            attempt=attempt if isinstance(node.config, ActionConfig) else None,
            retry_of=retry_of,
        )
        self.state.node_runs.append(node_run)
        self.emit("nodeRun.created", node_run)
        return node_run

    # -- timers ---------------------------------------------------------------------

    def set_timer(
        self, purpose: TimerPurpose, due_at: datetime, node_run: NodeRunState | None = None
    ) -> None:
        """Arm the run's (or ``node_run``'s) timer of ``purpose`` for ``due_at``."""
        nr_id = node_run.id if node_run is not None else None
        timer = timer_id(self.state.run_id, nr_id, purpose)
        effect = trusted(
            SetTimer, id=f"{timer}:set:{self.state.step}", timer_id=timer, run_id=self.state.run_id,
            node_run_id=nr_id, purpose=purpose, due_at=due_at,
        )  # fmt: skip
        self.add(effect)

    def cancel_timer(self, purpose: TimerPurpose, node_run: NodeRunState | None = None) -> None:
        timer = timer_id(self.state.run_id, node_run.id if node_run else None, purpose)
        run_id = self.state.run_id
        effect_id = f"{timer}:cancel:{self.state.step}"
        self.add(trusted(CancelTimer, id=effect_id, timer_id=timer, run_id=run_id))

    def close_node_run(
        self, node_run: NodeRunState, result: NodeRunResult, output: Any = None
    ) -> None:
        """Mark ``node_run`` COMPLETED with ``result`` (``output`` stored masked if given)."""
        node_run.status = "COMPLETED"
        node_run.result = result
        if output is not None:
            node_run.output = self.masker.value(output)
        node_run.updated_at = node_run.completed_at = self.now
        if node_run.deadline is not None:  # it ended in time: disarm its deadline
            node_run.deadline = None
            self.cancel_timer("node_timeout", node_run)
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

    def cancel_in_flight(
        self, reason: str, keep: NodeRunState | None = None, level: LogLevel = "WARN"
    ) -> None:
        """End every IN_PROGRESS node run (but ``keep``) as CANCELLED, logging why, and
        drop every pending retry."""
        for node_run in self.state.node_runs:
            if node_run.in_flight and node_run is not keep:
                self.log(node_run, level, reason)
                self.close_node_run(node_run, "CANCELLED")
            elif node_run.retry_pending:
                self.drop_retry(node_run, reason)

    def drop_retry(self, node_run: NodeRunState, reason: str) -> None:
        """The next attempt of FAILED ``node_run`` will not start."""
        node_run.retry_at = None
        self.log(node_run, "WARN", f"retry dropped: {reason}")
        self.cancel_timer("retry", node_run)
        self.emit("nodeRun.updated", node_run)

    # -- the run --------------------------------------------------------------------

    def finish_run(self, result: RunResult) -> None:
        """The run is over: nothing runs after this, whatever arrives later."""
        self.state.status = "COMPLETED"
        self.state.result = result
        self.state.completed_at = self.now
        if self.state.deadline is not None:
            self.state.deadline = None
            self.cancel_timer("run_timeout")
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
