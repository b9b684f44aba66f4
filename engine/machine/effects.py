"""What a decision asks the outside world to do: effects are data, stored in an outbox.

Every effect has a deterministic ``id`` (built from the run id, node-run id, event
seq or step), so a consumer or the store that sees one twice can tell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from switchyard.engine.machine.state import RunState
from switchyard.schemas import (
    AiRequest,
    EntityRequest,
    NodeRunLog,
    NodeRunRequest,
    RunEvent,
    RunResult,
    RunTriggered,
    TimerPurpose,
    WebhookRequest,
)


class _Effect(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str


class PublishNodeRunRequest(_Effect):
    """Send a KAFKA node's ``{payload, context}`` to the node-run request topic."""

    kind: Literal["PublishNodeRunRequest"] = "PublishNodeRunRequest"
    request: NodeRunRequest


class PublishWebhookRequest(_Effect):
    """Hand a rendered WEBHOOK node to the built-in webhook executor."""

    kind: Literal["PublishWebhookRequest"] = "PublishWebhookRequest"
    request: WebhookRequest


class PublishAiRequest(_Effect):
    """Hand a rendered AI or AI_AGENT node to the built-in AI executor."""

    kind: Literal["PublishAiRequest"] = "PublishAiRequest"
    request: AiRequest


class PublishEntityRequest(_Effect):
    """Hand a rendered UPSERT_ENTITY node to the built-in entity executor."""

    kind: Literal["PublishEntityRequest"] = "PublishEntityRequest"
    request: EntityRequest


class PublishAgentRequest(_Effect):
    """Hand an ``agent: true`` WEBHOOK node run to Port's execution agent (``<org
    id>.runs``). ``message`` is the agent's envelope with empty ``headers``: the store's
    plan signs it with the agent's client secret, stamped ``timestamp`` (the decision's
    time, Unix seconds), so the machine holds no secret and no clock."""

    kind: Literal["PublishAgentRequest"] = "PublishAgentRequest"
    message: dict[str, Any]
    timestamp: int


class MarkPendingClaim(_Effect):
    """Make an INTEGRATION_ACTION node run claimable by its installation's workers.

    ``config`` is the rendered node config (camelCase, ``type`` kept) that the
    claim response shows under ``config`` and ``node.config``.
    """

    kind: Literal["MarkPendingClaim"] = "MarkPendingClaim"
    installation_id: str
    node_run_id: str
    run_id: str
    config: dict[str, Any]
    # The node's ``nodeUid``: stored with the claim, so a claim's ``exclude`` of uids
    # is applied by the claim script itself.
    node_uid: str | None = None


class ClearPendingClaim(_Effect):
    """The node run is over (completed or cancelled): no worker may claim it any more."""

    kind: Literal["ClearPendingClaim"] = "ClearPendingClaim"
    installation_id: str
    node_run_id: str
    run_id: str


class AppendLogs(_Effect):
    """Append lines to a node run's logs (kept beside the state, never rewritten)."""

    kind: Literal["AppendLogs"] = "AppendLogs"
    run_id: str
    node_run_id: str
    entries: list[NodeRunLog]


class EmitRunEvent(_Effect):
    """Publish a state change on the run events topic."""

    kind: Literal["EmitRunEvent"] = "EmitRunEvent"
    event: RunEvent


class RunFinished(_Effect):
    """The run is COMPLETED: the store moves it between its status indexes."""

    kind: Literal["RunFinished"] = "RunFinished"
    run_id: str
    workflow_identifier: str
    result: RunResult
    completed_at: datetime


class SetTimer(_Effect):
    """Arm timer ``timer_id`` (:func:`switchyard.schemas.timer_id`): at ``due_at`` the
    timer service sends ``TimerFired`` to the inbox, keyed by ``run_id``. Setting an
    armed timer again moves its due time."""

    kind: Literal["SetTimer"] = "SetTimer"
    timer_id: str
    run_id: str
    node_run_id: str | None = None
    purpose: TimerPurpose
    due_at: datetime


class CancelTimer(_Effect):
    """Disarm ``timer_id``: what it was for is over. (A firing already on its way is
    harmless: the machine ignores a timer that no longer matches the state.)"""

    kind: Literal["CancelTimer"] = "CancelTimer"
    timer_id: str
    run_id: str


class PublishInboxEvent(_Effect):
    """Send an event to another run's inbox partition (a re-run's ``RunTriggered``)."""

    kind: Literal["PublishInboxEvent"] = "PublishInboxEvent"
    event: RunTriggered


Effect = Annotated[
    PublishNodeRunRequest
    | PublishWebhookRequest
    | PublishAgentRequest
    | PublishAiRequest
    | PublishEntityRequest
    | MarkPendingClaim
    | ClearPendingClaim
    | AppendLogs
    | EmitRunEvent
    | RunFinished
    | SetTimer
    | CancelTimer
    | PublishInboxEvent,
    Field(discriminator="kind"),
]
EFFECTS: TypeAdapter[list[Effect]] = TypeAdapter(list[Effect])
"""For the store's outbox: ``EFFECTS.dump_json(effects)``, ``EFFECTS.validate_json(raw)``."""

RejectionCode = Literal[
    "unknown_run",
    "wrong_run",
    "duplicate_trigger",
    "duplicate_update",
    "workflow_mismatch",
    "no_trigger",
    "trigger_unpublished",
    "invalid_inputs",
    "unknown_node_run",
    "node_run_frozen",
    "run_completed",
    "run_cancelling",
    "unknown_timer",
    "stale_timer",
    "late_update",
    "run_in_progress",
    "invalid_rerun",
    "unknown_event",
    # InputResponded (approval.py); a report that would complete an INPUT node run.
    "not_an_input",
    "unknown_button",
    "duplicate_response",
    "already_responded",
    "input_closed",
    "input_needs_response",
]


@dataclass(frozen=True)
class Rejection:
    """Why an event was not applied; the state is unchanged and no effect is produced.

    ``code`` is stable (tests, metrics, dead-letter reasons); ``reason`` is a sentence.
    """

    code: RejectionCode
    reason: str


@dataclass(frozen=True)
class Decision:
    """The outcome of one event: the new state and effects, or a rejection."""

    state: RunState | None
    effects: tuple[Effect, ...] = field(default=())
    rejection: Rejection | None = None

    @property
    def accepted(self) -> bool:
        return self.rejection is None


def reject(state: RunState | None, code: RejectionCode, reason: str) -> Decision:
    """The decision that refuses an event: ``state`` unchanged, no effects."""
    return Decision(state=state, rejection=Rejection(code, reason))
