"""Messages on Kafka: the engine's inbox events and what the engine sends out.

Inbox events are a discriminated union on ``type``, frozen and strict (unknown keys
refused): external systems may produce them, so nothing is silently ignored. Every
message is keyed by its run id (``run_id``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from switchyard.schemas.base import FrozenWireModel
from switchyard.schemas.ids import Identifier, NodeRunId, RunId
from switchyard.schemas.run import LogLevel, NodeRunResult, NodeRunStatus, RunResult, RunStatus
from switchyard.schemas.timestamps import Timestamp


class RunTriggered(FrozenWireModel):
    """Start run ``run_id`` of a workflow (from the bridge, or produced directly)."""

    type: Literal["RunTriggered"] = "RunTriggered"
    run_id: RunId
    workflow_identifier: Identifier
    # None: the newest version when the engine handles the event.
    workflow_version: int | None = Field(default=None, ge=1)
    # None: the workflow's only self-service trigger.
    node_identifier: Identifier | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    created_by: str = Field(min_length=1)
    triggered_at: Timestamp
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)


class LogEntry(FrozenWireModel):
    """A log line sent with a node-run update; ``createdAt`` defaults to arrival time."""

    log_level: LogLevel
    log: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    created_at: Timestamp | None = None


class NodeRunUpdated(FrozenWireModel):
    """Progress or completion of a node run (a PATCH, an executor, a Kafka consumer).

    ``output``/``links``/``externalRunId`` left out (null) keep what the node run has.
    """

    type: Literal["NodeRunUpdated"] = "NodeRunUpdated"
    run_id: RunId
    node_run_id: NodeRunId
    status: NodeRunStatus
    result: NodeRunResult | None = None
    output: dict[str, Any] | None = None
    logs: list[LogEntry] = Field(default_factory=list)
    links: list[str] | None = None
    external_run_id: str | None = None
    sent_at: Timestamp

    @model_validator(mode="after")
    def _result_with_completed(self) -> NodeRunUpdated:
        if self.status == "COMPLETED" and self.result is None:
            raise ValueError("result is required when status is COMPLETED")
        if self.status != "COMPLETED" and self.result is not None:
            raise ValueError("result is only allowed when status is COMPLETED")
        return self


class RunCommand(FrozenWireModel):
    """An operator's command for a run: ``cancel`` (graceful, or ``force``)."""

    type: Literal["RunCommand"] = "RunCommand"
    run_id: RunId
    command: Literal["cancel"]
    force: bool = False
    by: str = Field(min_length=1)


class TimerFired(FrozenWireModel):
    """A timer the engine set has come due (sent by the timer service)."""

    type: Literal["TimerFired"] = "TimerFired"
    run_id: RunId
    timer_id: str = Field(min_length=1)
    node_run_id: NodeRunId | None = None
    fired_at: Timestamp


InboxEvent = Annotated[
    RunTriggered | NodeRunUpdated | RunCommand | TimerFired, Field(discriminator="type")
]
INBOX_EVENT_TYPES = ("RunTriggered", "NodeRunUpdated", "RunCommand", "TimerFired")


class NodeRunContext(FrozenWireModel):
    """Who a request is for; ``runId`` repeats the node-run id, as Port's agent expects."""

    workflow_identifier: Identifier
    workflow_run_id: RunId
    node_run_id: NodeRunId
    node_identifier: Identifier
    run_id: NodeRunId

    @model_validator(mode="after")
    def _run_id_is_node_run(self) -> NodeRunContext:
        if self.run_id != self.node_run_id:
            raise ValueError("runId must equal nodeRunId")
        return self


class NodeRunRequest(FrozenWireModel):
    """A KAFKA node's message on the node-run request topic (SPEC §5), exactly
    ``{payload, context}``; a consumer completes the node with ``NodeRunUpdated``."""

    payload: Any
    context: NodeRunContext

    @property
    def run_id(self) -> str:
        return self.context.workflow_run_id


class WebhookRequest(FrozenWireModel):
    """A rendered WEBHOOK node for the built-in webhook executor.

    Synchronized: the executor makes the call and reports ``{response: {status, data}}``.
    Not synchronized: it POSTs ``{payload: body, context}`` and the receiver PATCHes.
    """

    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    synchronized: bool = True
    # None: the executor's configured default.
    timeout_seconds: float | None = None
    on_timeout: Literal["fail", "continue"] = "fail"
    verbose: bool = False
    context: NodeRunContext

    @property
    def run_id(self) -> str:
        return self.context.workflow_run_id


RunEventKind = Literal[
    "run.created",
    "run.updated",
    "run.completed",
    "nodeRun.created",
    "nodeRun.updated",
    "nodeRun.completed",
]


class RunEvent(FrozenWireModel):
    """A state change of a run or one of its node runs, for the UI, audit, subscribers.

    ``seq`` counts the run's events from 1 without gaps, so a reader can spot a loss.
    """

    run_id: RunId
    seq: int = Field(ge=1)
    kind: RunEventKind
    node_run_id: NodeRunId | None = None
    node_identifier: Identifier | None = None
    status: RunStatus | NodeRunStatus
    result: RunResult | NodeRunResult | None = None
    at: Timestamp
