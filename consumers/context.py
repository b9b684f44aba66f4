"""What a handler gets and what it gives back: its context, its logger, its outcome.

A handler is ``async def handle(ctx: WorkContext) -> Outcome | dict | None``: a dict
is a SUCCESS with that output, ``None`` a SUCCESS with ``{}``. Lines logged through
``ctx.log`` ship to the node run with the next report (``ctx.progress`` or the
result), and also go to Python logging, so they show on the worker's terminal.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeAlias

from switchyard.schemas import LogEntry, LogLevel, NodeRunResult, NodeRunStatus, NodeRunUpdated

log = logging.getLogger("switchyard.worker")

_PY_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
              "ERROR": logging.ERROR}  # fmt: skip


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outcome:
    """How a handler ends a node run: a result, or ``IN_PROGRESS`` to leave it open.

    ``in_progress`` is for work another party completes later (an external job whose
    webhook will PATCH the node run); it reports what it carries and nothing else.
    """

    status: NodeRunStatus = "COMPLETED"
    result: NodeRunResult | None = "SUCCESS"
    output: dict[str, Any] | None = None
    links: list[str] | None = None
    external_run_id: str | None = None

    @classmethod
    def success(
        cls,
        output: dict[str, Any] | None = None,
        *,
        links: list[str] | None = None,
        external_run_id: str | None = None,
    ) -> Outcome:
        return cls("COMPLETED", "SUCCESS", output or {}, links, external_run_id)

    @classmethod
    def failed(
        cls,
        output: dict[str, Any] | None = None,
        *,
        links: list[str] | None = None,
        external_run_id: str | None = None,
    ) -> Outcome:
        return cls("COMPLETED", "FAILED", output or {}, links, external_run_id)

    @classmethod
    def in_progress(
        cls,
        output: dict[str, Any] | None = None,
        *,
        links: list[str] | None = None,
        external_run_id: str | None = None,
    ) -> Outcome:
        return cls("IN_PROGRESS", None, output, links, external_run_id)


class Reporter(Protocol):
    """Where a node run's updates go: the inbox topic, or the runs API."""

    async def report(self, update: NodeRunUpdated) -> None: ...


class NodeLogger:
    """Log lines for the node run; they ride on the next update the worker sends."""

    def __init__(self, clock: Callable[[], datetime], node_run_id: str) -> None:
        self._clock = clock
        self._node_run_id = node_run_id
        self._lines: list[LogEntry] = []

    def debug(self, message: str, **tags: str) -> None:
        self.add("DEBUG", message, tags)

    def info(self, message: str, **tags: str) -> None:
        self.add("INFO", message, tags)

    def warn(self, message: str, **tags: str) -> None:
        self.add("WARN", message, tags)

    def error(self, message: str, **tags: str) -> None:
        self.add("ERROR", message, tags)

    def add(self, level: LogLevel, message: str, tags: dict[str, str] | None = None) -> None:
        entry = LogEntry.model_validate(
            {"logLevel": level, "log": message, "tags": tags or {}, "createdAt": self._clock()}
        )
        self._lines.append(entry)
        log.log(_PY_LEVELS[level], "%s: %s", self._node_run_id, message,
                extra={"node_run_id": self._node_run_id})  # fmt: skip

    @property
    def lines(self) -> tuple[LogEntry, ...]:
        """Lines not yet shipped."""
        return tuple(self._lines)

    def drain(self) -> list[LogEntry]:
        lines, self._lines = self._lines, []
        return lines


@dataclass
class WorkContext:
    """One node run to execute, as a handler sees it.

    ``payload`` is the KAFKA node's rendered payload (for a claimed INTEGRATION_ACTION
    node: its ``integrationActionExecutionProperties``, with the whole rendered config
    in ``config``). ``workflow_identifier`` is None for claimed node runs (the claim
    response does not carry it).
    """

    run_id: str
    node_run_id: str
    node_identifier: str
    workflow_identifier: str | None
    payload: Any
    reporter: Reporter
    clock: Callable[[], datetime] = utc_now
    config: dict[str, Any] | None = None
    log: NodeLogger = field(init=False)

    def __post_init__(self) -> None:
        self.log = NodeLogger(self.clock, self.node_run_id)

    async def progress(
        self,
        *,
        output: dict[str, Any] | None = None,
        links: list[str] | None = None,
        external_run_id: str | None = None,
    ) -> None:
        """Report IN_PROGRESS now, with the lines logged so far (Port's "run started")."""
        update = self.update_for(Outcome.in_progress(output, links=links,
                                                     external_run_id=external_run_id))  # fmt: skip
        if update is not None:
            await self.reporter.report(update)

    def update_for(self, outcome: Outcome) -> NodeRunUpdated | None:
        """The update that reports ``outcome`` and the pending log lines; None when an
        IN_PROGRESS outcome carries nothing (nothing to say, so nothing is sent)."""
        logs = self.log.drain()
        empty = outcome.output is None and outcome.links is None and outcome.external_run_id is None
        if outcome.status == "IN_PROGRESS" and empty and not logs:
            return None
        return NodeRunUpdated.model_validate(
            {
                "runId": self.run_id,
                "nodeRunId": self.node_run_id,
                "status": outcome.status,
                "result": outcome.result,
                "output": outcome.output,
                "logs": logs,
                "links": outcome.links,
                "externalRunId": outcome.external_run_id,
                "sentAt": self.clock(),
            }
        )


Returned: TypeAlias = Outcome | dict[str, Any] | None
Handler: TypeAlias = Callable[[WorkContext], Awaitable[Returned]]
