"""Run a handler without a broker or a server, and look at what it reported.

    env = HandlerEnvironment()
    done = await env.run(deploy, {"service": "api"})
    assert done.result == "SUCCESS"
    assert done.output == {"version": "1.2"}
    assert [line.log for line in done.logs] == ["deploying api"]

The handler runs exactly as a worker runs it (:func:`run_handler`): an exception
becomes a FAILED result with an ERROR line; ``ctx.progress`` calls are captured too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from switchyard.consumers.context import Handler, WorkContext, utc_now
from switchyard.consumers.running import run_handler
from switchyard.schemas import LogEntry, NodeRunResult, NodeRunStatus, NodeRunUpdated, node_run_id


@dataclass
class HandlerRun:
    """Every update a handler's node run got, in order (progress first, result last)."""

    updates: list[NodeRunUpdated] = field(default_factory=list)

    async def report(self, update: NodeRunUpdated) -> None:
        self.updates.append(update)

    @property
    def final(self) -> NodeRunUpdated | None:
        return self.updates[-1] if self.updates else None

    @property
    def status(self) -> NodeRunStatus | None:
        return self.final.status if self.final else None

    @property
    def result(self) -> NodeRunResult | None:
        return self.final.result if self.final else None

    @property
    def output(self) -> dict[str, Any] | None:
        """The last output reported (progress updates may carry one)."""
        outputs = [u.output for u in self.updates if u.output is not None]
        return outputs[-1] if outputs else None

    @property
    def logs(self) -> list[LogEntry]:
        return [line for u in self.updates for line in u.logs]


class HandlerEnvironment:
    """A fake node run to hand to a handler: ids, identifiers and clock are settable."""

    def __init__(
        self,
        *,
        run_id: str = "wfr_TestRun000000000",
        workflow_identifier: str | None = "test-workflow",
        node_identifier: str = "work",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.run_id = run_id
        self.workflow_identifier = workflow_identifier
        self.node_identifier = node_identifier
        self.clock = clock

    async def run(
        self, handler: Handler, payload: Any = None, *, config: dict[str, Any] | None = None
    ) -> HandlerRun:
        captured = HandlerRun()
        ctx = WorkContext(
            run_id=self.run_id,
            node_run_id=node_run_id(self.run_id, self.node_identifier),
            node_identifier=self.node_identifier,
            workflow_identifier=self.workflow_identifier,
            payload=payload,
            reporter=captured,
            clock=self.clock,
            config=config,
        )
        update = await run_handler(handler, ctx)
        if update is not None:
            await captured.report(update)
        return captured
