"""The stored state of one run: small, JSON, one value per run in Redis.

Node runs are kept without their logs (the store appends logs separately, from
``AppendLogs`` effects). What the graph walk needs is kept as connection indexes
(``taken``) and node identifiers (``dead``); everything else is derived from the
workflow version the run is pinned to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
import orjson
from msgspec.structs import replace

from switchyard.engine.machine.state_format import needs_upgrade, upgrade_document
from switchyard.schemas import (
    NodeRunResult,
    NodeRunStatus,
    RerunOf,
    RunResult,
    RunStatus,
    StatusLabel,
)
from switchyard.schemas.ids import RUN_ID_PATTERN

STATE_FORMAT = 2
# What a state built in code (or a document from before ``format`` was written)
# carries until ``__post_init__`` sets the current format; never stored.
_NO_FORMAT = 0

# The run id's pattern, checked by the decoder (pydantic's constraints mean nothing to
# it). Node-run ids are only typed: a regex per node run was half the decode's time.
_RunId = Annotated[str, msgspec.Meta(pattern=RUN_ID_PATTERN)]


class NodeRunState(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """One node run as the engine keeps it; ``output`` is the raw (masked) output."""

    id: str
    node: str
    status: NodeRunStatus = "IN_PROGRESS"
    result: NodeRunResult | None = None
    output: Any = None
    links: list[str] = msgspec.field(default_factory=list)
    external_run_id: str | None = None
    # INTEGRATION_ACTION: the (rendered) installation its claim is pending for.
    installation_id: str | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    # Action nodes: 1-based attempt, and the attempt this one retries.
    attempt: int | None = None
    retry_of: str | None = None
    # A partial re-run's copy: the old run's node run it was copied from.
    reused_from: str | None = None
    # When the engine fails it (node timeout); its timer is armed until then.
    deadline: datetime | None = None
    # A FAILED attempt whose retry is pending: when the next attempt starts.
    retry_at: datetime | None = None
    # It ended by its deadline: a late report is benign, not a fault.
    timed_out: bool = False
    status_label: StatusLabel | None = None

    @property
    def in_flight(self) -> bool:
        return self.status == "IN_PROGRESS"

    @property
    def retry_pending(self) -> bool:
        return self.retry_at is not None


class RunState(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """Everything the machine knows about a run between two events.

    Invariant (checked by :func:`problems`): a run that is not COMPLETED has at least
    one IN_PROGRESS node run, the thing it is waiting on; a COMPLETED run has none.

    A msgspec struct, not a pydantic model: its JSON round trip and copies are the
    engine's per-event cost. ``status_label`` and ``rerun_of`` stay the wire's pydantic
    models (rare, and the API shows them as they are), through the codec's hooks.
    """

    # Always stored, and first: ``needs_upgrade`` reads it from the document's start.
    format: int = _NO_FORMAT
    run_id: _RunId
    workflow_identifier: str
    workflow_version: int
    # The trigger node that fired: templates see its output as .outputs.trigger too.
    trigger: str
    created_by: str
    idempotency_key: str | None = None
    status: RunStatus = "IN_PROGRESS"
    result: RunResult | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    # variables.outputs: stored (masked, reshaped by `variables`) output per node.
    outputs: dict[str, Any] = msgspec.field(default_factory=dict)
    node_runs: list[NodeRunState] = msgspec.field(default_factory=list)
    # The walk: connections followed (by index) and nodes no path can reach any more.
    taken: list[int] = msgspec.field(default_factory=list)
    dead: list[str] = msgspec.field(default_factory=list)
    # Last RunEvent seq emitted, and events applied (part of effect ids).
    seq: int = 0
    step: int = 0
    # The workflow's timeoutSeconds: when the run is cancelled (forced) and FAILED.
    deadline: datetime | None = None
    rerun_of: RerunOf | None = None
    status_label: StatusLabel | None = None
    # The chain depth of an event-triggered run (RunTriggered.depth), carried by the
    # entity events its UPSERT_ENTITY nodes cause.
    depth: int = 0
    # Format 2: the W3C ``traceparent`` of the run's trace, kept from its first traced
    # transition, so that a report without trace context continues it. Only the engine
    # sets it (never the machine: tracing is I/O's business); absent while tracing is off.
    trace: str | None = None

    def __post_init__(self) -> None:
        # Absent in a document written before the field was always written: format 1
        # (``load_state`` has sent any other document through the upgrade first).
        if self.format == _NO_FORMAT:
            self.format = STATE_FORMAT

    def node_run(self, node_run_id: str) -> NodeRunState | None:
        return next((nr for nr in self.node_runs if nr.id == node_run_id), None)

    def node_run_of(self, node_identifier: str) -> NodeRunState | None:
        """The node's latest node run (its last attempt), if it ran."""
        return next((nr for nr in reversed(self.node_runs) if nr.node == node_identifier), None)

    @property
    def waiting_on(self) -> list[str]:
        """Ids of the node runs the run is waiting on: IN_PROGRESS ones, and FAILED
        attempts whose retry is pending."""
        return [nr.id for nr in self.node_runs if nr.in_flight or nr.retry_pending]

    @property
    def is_completed(self) -> bool:
        return self.status == "COMPLETED"


def problems(state: RunState) -> list[str]:
    """Broken invariants of ``state`` (empty when sound); the tests check every step."""
    found = []
    if not state.is_completed and not state.waiting_on:
        found.append(f"{state.run_id} is {state.status} but waits on no node run")
    if state.is_completed and state.waiting_on:
        found.append(f"{state.run_id} is COMPLETED but {state.waiting_on} are IN_PROGRESS")
    if state.is_completed != (state.result is not None):
        found.append(f"{state.run_id}: status {state.status} with result {state.result}")
    return found


def clone_state(state: RunState) -> RunState:
    """A working copy the machine may change without touching ``state``.

    Only the containers the machine mutates are copied (the outputs dict, the lists,
    each node run); the JSON values inside are always replaced, never changed in
    place, so they are shared. A deep copy cost 11% of the engine's time; the
    harness checks after every event of every test that the given state is unchanged.
    """
    return replace(
        state,
        outputs=dict(state.outputs),
        node_runs=[replace(nr, links=list(nr.links)) for nr in state.node_runs],
        taken=list(state.taken),
        dead=list(state.dead),
    )


def _encode_model(value: Any) -> Any:
    """The JSON of the wire models a state holds (``StatusLabel``, ``RerunOf``), as
    pydantic wrote them inside the state: camelCase, defaults left out."""
    if isinstance(value, StatusLabel | RerunOf):
        return value.model_dump(mode="json", exclude_defaults=True)
    raise NotImplementedError(f"a run state can't hold a {type(value).__name__}")


def _decode_model(kind: type, value: Any) -> Any:
    if kind is StatusLabel or kind is RerunOf:
        return kind.model_validate(value)
    raise NotImplementedError(f"a run state can't hold a {kind.__name__}")


_ENCODER = msgspec.json.Encoder(enc_hook=_encode_model)
_DECODER = msgspec.json.Decoder(RunState, dec_hook=_decode_model)


def dump_state(state: RunState) -> bytes:
    """The stored JSON: ``format`` first, then every field that is not its default."""
    return _ENCODER.encode(state)


def load_state(raw: bytes | str) -> RunState:
    """A stored state, its types checked; an older format is upgraded first.

    Raises ``ValueError`` (``msgspec.ValidationError``) naming the field of a document
    that doesn't fit, and ``StateFormatError`` for one newer than this code.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    # The upgrade hook (switchyard.engine.machine.state_format): a document that is
    # not in the current format goes through its steps; the next apply step stores
    # it in the current one.
    if needs_upgrade(data):
        data = orjson.dumps(upgrade_document(orjson.loads(data)))
    return _DECODER.decode(data)
