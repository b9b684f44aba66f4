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
from switchyard.schemas.run import (
    LogLevel,
    NodeRunResult,
    NodeRunStatus,
    RerunOf,
    RunResult,
    RunStatus,
    StatusLabel,
)
from switchyard.schemas.timestamps import Timestamp


class ReusedNodeRun(FrozenWireModel):
    """A node run of the old run that a partial re-run keeps as it was.

    ``stored`` is its ``variables.outputs`` entry (absent when it had none);
    ``leads_to`` the nodes its taken connections led to, so the new run's walk
    follows the same path out of it.
    """

    node_identifier: Identifier
    node_run_id: NodeRunId
    result: NodeRunResult
    output: Any = None
    has_stored: bool = False
    stored: Any = None
    leads_to: list[Identifier] = Field(default_factory=list)
    links: list[str] = Field(default_factory=list)
    external_run_id: str | None = None
    attempt: int = Field(default=1, ge=1)
    created_at: Timestamp
    completed_at: Timestamp


class RunTriggered(FrozenWireModel):
    """Start run ``run_id`` of a workflow (from the bridge, or produced directly).

    ``rerun_of`` and ``reuse`` are set by the engine for a re-run: the old run's
    partition owner publishes them from the old run's state.
    """

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
    rerun_of: RerunOf | None = None
    reuse: list[ReusedNodeRun] = Field(default_factory=list)
    # An EVENT_TRIGGER's or SCHEDULE_TRIGGER's output (``{diff, action, context}``,
    # ``{scheduledAt, cron}``), set by the trigger matcher or the scheduler; None for a
    # self-service trigger, whose output is the validated ``inputs``.
    payload: dict[str, Any] | None = None
    # How many event-triggered runs led to this one through entity changes (0: started
    # by a person, a schedule or the API); the trigger matcher refuses to go past
    # SWITCHYARD_TRIGGER_MAX_DEPTH, so a workflow can't re-trigger itself forever.
    depth: int = Field(default=0, ge=0, le=1000)


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
    status_label: StatusLabel | None = None
    sent_at: Timestamp

    @model_validator(mode="after")
    def _result_with_completed(self) -> NodeRunUpdated:
        if self.status == "COMPLETED" and self.result is None:
            raise ValueError("result is required when status is COMPLETED")
        if self.status != "COMPLETED" and self.result is not None:
            raise ValueError("result is only allowed when status is COMPLETED")
        return self


class RunCommand(FrozenWireModel):
    """An operator's command for a run.

    ``cancel``: graceful, or ``force``. ``rerun``: start a new run ``new_run_id`` (None:
    derived from this run and the command, so a redelivered command starts no second
    run) with ``inputs`` (None: the old run's), from ``from_node`` (partial re-run: the
    node runs not downstream of it are reused), on the old run's version (``pinned``)
    or the newest; while the old run is in progress only with ``force`` (cancels it).
    """

    type: Literal["RunCommand"] = "RunCommand"
    run_id: RunId
    command: Literal["cancel", "rerun"]
    force: bool = False
    by: str = Field(min_length=1)
    new_run_id: RunId | None = None
    inputs: dict[str, Any] | None = None
    from_node: Identifier | None = None
    version: Literal["pinned", "latest"] = "pinned"

    @model_validator(mode="after")
    def _rerun_fields(self) -> RunCommand:
        if self.command == "cancel" and (
            self.new_run_id or self.inputs is not None or self.from_node or self.version != "pinned"
        ):
            raise ValueError("newRunId, inputs, fromNode and version are for command: rerun")
        return self


class InputResponded(FrozenWireModel):
    """A responder's answer to an ``INPUT`` node run (``POST .../respond``): the bridge
    has checked that ``submitted_by`` is a responder and ``inputs`` fit the form; the
    engine counts it once per responder."""

    type: Literal["InputResponded"] = "InputResponded"
    run_id: RunId
    node_run_id: NodeRunId
    button_identifier: Identifier
    inputs: dict[str, Any] = Field(default_factory=dict)
    submitted_by: str = Field(min_length=1)
    submitted_at: Timestamp


TimerPurpose = Literal["node_timeout", "run_timeout", "retry"]


class TimerFired(FrozenWireModel):
    """A timer the engine set has come due (sent by the timer service).

    ``timer_id`` is deterministic (:func:`timer_id`): a timer fired twice, or after
    what it was for is over, is recognised and changes nothing.
    """

    type: Literal["TimerFired"] = "TimerFired"
    run_id: RunId
    timer_id: str = Field(min_length=1)
    node_run_id: NodeRunId | None = None
    purpose: TimerPurpose | None = None
    due_at: Timestamp | None = None
    fired_at: Timestamp


def timer_id(run_id: str, node_run_id: str | None, purpose: TimerPurpose) -> str:
    """The one id of a run's (or a node run's) timer of ``purpose``."""
    return f"{node_run_id or run_id}:{purpose}"


InboxEvent = Annotated[
    RunTriggered | NodeRunUpdated | RunCommand | TimerFired | InputResponded,
    Field(discriminator="type"),
]
INBOX_EVENT_TYPES = ("RunTriggered", "NodeRunUpdated", "RunCommand", "TimerFired",
                     "InputResponded")  # fmt: skip


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


class EmailMessage(FrozenWireModel):
    """A plain-text email an INPUT node's ``email`` notification sends."""

    to: list[str] = Field(min_length=1)
    subject: str
    text: str


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
    # An INPUT node's notification (its index in ``notifications``), not a WEBHOOK
    # node: the body is sent as is and the outcome is only logged on the node run
    # (an IN_PROGRESS report), never its result.
    notification: int | None = Field(default=None, ge=0)
    # An email notification: sent over SMTP by the same executor (``url`` is then
    # ``mailto:`` and the recipients).
    email: EmailMessage | None = None

    @property
    def run_id(self) -> str:
        return self.context.workflow_run_id

    @property
    def work_key(self) -> str:
        """What a worker deduplicates on: the node run, and the notification if one."""
        if self.notification is None:
            return self.context.node_run_id
        return f"{self.context.node_run_id}:notification:{self.notification}"


class AiRequest(FrozenWireModel):
    """A rendered ``AI`` or ``AI_AGENT`` node for the built-in AI executor, which calls an
    OpenAI-compatible chat-completions endpoint and reports ``{response,
    invocationIdentifier}``."""

    system_prompt: str = ""
    user_prompt: str
    # None: the executor's configured model (SWITCHYARD_AI_MODEL).
    model: str | None = None
    output_schema: dict[str, Any] | None = None
    timeout_seconds: float | None = None
    context: NodeRunContext

    @property
    def run_id(self) -> str:
        return self.context.workflow_run_id


class EntityRequest(FrozenWireModel):
    """A rendered ``UPSERT_ENTITY`` node for the built-in entity executor, which writes
    it to the entity store once per node run and reports ``{response: {data: entity}}``.

    ``entity`` is the rendered mapping (``identifier``, ``title``, ``icon``, ``team``,
    ``properties``, ``relations``; ``identifier`` absent: one is generated from the node
    run, so a redelivery writes the same entity). ``depth`` is the run's chain depth,
    carried by the entity event so the trigger matcher can stop a loop.
    """

    blueprint_identifier: str = Field(min_length=1)
    entity: dict[str, Any]
    depth: int = Field(default=0, ge=0)
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
