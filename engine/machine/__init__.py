"""The pure per-run state machine: decide(state, event, ...) -> Decision(state, effects).

No asyncio, Redis, Kafka, clock or randomness inside: the processor passes the
workflow version, the time, the template engine and the secrets in, stores the new
state and the effects (an outbox) atomically, then carries the effects out.
"""

from switchyard.engine.machine.decide import decide
from switchyard.engine.machine.effects import (
    EFFECTS,
    AppendLogs,
    CancelTimer,
    ClearPendingClaim,
    Decision,
    Effect,
    EmitRunEvent,
    MarkPendingClaim,
    PublishInboxEvent,
    PublishNodeRunRequest,
    PublishWebhookRequest,
    Rejection,
    RejectionCode,
    RunFinished,
    SetTimer,
)
from switchyard.engine.machine.options import MachineOptions
from switchyard.engine.machine.projection import to_workflow_run
from switchyard.engine.machine.state import (
    NodeRunState,
    RunState,
    dump_state,
    load_state,
    problems,
)
from switchyard.engine.machine.waits import waits

__all__ = [
    "EFFECTS",
    "AppendLogs",
    "CancelTimer",
    "ClearPendingClaim",
    "Decision",
    "Effect",
    "EmitRunEvent",
    "MachineOptions",
    "MarkPendingClaim",
    "NodeRunState",
    "PublishInboxEvent",
    "PublishNodeRunRequest",
    "PublishWebhookRequest",
    "Rejection",
    "RejectionCode",
    "RunFinished",
    "RunState",
    "SetTimer",
    "decide",
    "dump_state",
    "load_state",
    "problems",
    "to_workflow_run",
    "waits",
]
