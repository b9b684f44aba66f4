"""Request and response bodies of the runs API, as the OpenAPI document shows them.

Our own requests (trigger, re-run) refuse unknown keys (a misspelt field is a 422
naming it). The bodies Port's workers send (PATCH, logs, claim, ack) ignore unknown
keys, logged at debug: Port's clients add fields over time and must keep working;
the known fields are validated as strictly as ever. Log lines take both spellings in
use: ``logLevel``/``log`` (PATCH, seed 001) and ``level``/``message`` (the logs
endpoint as Port's integration clients call it).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, ClassVar, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from switchyard.schemas import (
    LogLevel,
    NodeRunResult,
    NodeRunStatus,
    StatusLabel,
    Workflow,
    WorkflowRun,
)
from switchyard.schemas.ids import Identifier

log = logging.getLogger("switchyard.bridge")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _storable(value: dict[str, Any]) -> dict[str, Any]:
    # JSON allows numbers our store can't keep (orjson stops at 64-bit integers): a
    # 422 naming the field, not a 500 when the document is written.
    try:
        orjson.dumps(value)
    except TypeError as error:
        raise ValueError(f"can't be stored: {error}") from None
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_storable)]
"""A JSON object the bridge stores as given (settings, an integration's config)."""


class Lenient(BaseModel):
    """A body a client of Port's sends: unknown keys are ignored (logged at debug)."""

    model_config = ConfigDict(extra="ignore")
    # Other spellings a before-validator of the subclass renames; known, not unknown.
    _spellings: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _note_unknown(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(k) for k in set(data) - set(cls.model_fields) - cls._spellings)
            if unknown:
                log.debug("%s: ignoring unknown fields %s", cls.__name__, ", ".join(unknown))
        return data


class TriggerRequest(_Request):
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="Values for the trigger's userInputs."
    )
    nodeIdentifier: str | None = Field(
        default=None,
        description="Which self-service trigger to run; needed when there are several.",
    )


class RerunRequest(_Request):
    inputs: dict[str, Any] | None = Field(
        default=None,
        description="New inputs, validated as a trigger's; left out: the old run's inputs.",
    )
    fromNode: Identifier | None = Field(
        default=None,
        description="Partial re-run: restart at this node (it must have run in the old run); "
        "node runs not downstream of it are reused with their outputs (reusedFrom). "
        "Left out: a whole re-run.",
    )
    version: Literal["pinned", "latest"] = Field(
        default="pinned",
        description="pinned: the old run's workflow version; latest: the newest version.",
    )
    force: bool = Field(
        default=False,
        description="Re-run a run still in progress: it is cancelled (forced) first.",
    )


class LogLine(Lenient):
    _spellings: ClassVar[frozenset[str]] = frozenset({"level", "message"})

    logLevel: LogLevel = Field(description="DEBUG, INFO, WARN or ERROR (alias: level).")
    log: str = Field(default="", description="The text (alias: message).")
    tags: dict[str, str] = Field(default_factory=dict, description="Flat string tags.")

    @model_validator(mode="before")
    @classmethod
    def _other_spelling(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for old, new in (("level", "logLevel"), ("message", "log")):
                if old in data:
                    if new in data:
                        raise ValueError(f"give {new} or {old}, not both")
                    data[new] = data.pop(old)
        return data


class NodeRunPatch(Lenient):
    status: NodeRunStatus | None = Field(
        default=None, description="IN_PROGRESS (default) or COMPLETED."
    )
    result: NodeRunResult | None = Field(
        default=None, description="Required with COMPLETED: SUCCESS, FAILED or CANCELLED."
    )
    output: dict[str, Any] | None = Field(
        default=None,
        description="Replaces the node's stored output (made available to later nodes); "
        "left out: the stored output stays ({} when there is none).",
    )
    logs: list[LogLine] = Field(default_factory=list, description="Lines appended to its logs.")
    links: list[str] | None = Field(default=None, description="Links shown on the node run.")
    externalRunId: str | None = Field(
        default=None, min_length=1, description="The external system's id for this work."
    )
    statusLabel: StatusLabel | None = Field(
        default=None, description="A short label shown on the node run: {text, variant?}."
    )

    @model_validator(mode="after")
    def _result_with_completed(self) -> NodeRunPatch:
        if self.status == "COMPLETED" and self.result is None:
            raise ValueError("result is required when status is COMPLETED")
        if self.status != "COMPLETED" and self.result is not None:
            raise ValueError("result is only allowed with status COMPLETED")
        return self


class LogsRequest(Lenient):
    logs: list[LogLine] = Field(min_length=1, description="Lines appended to the node run.")


class ClaimRequest(Lenient):
    installationId: str = Field(
        min_length=1, max_length=200, description="Whose pending node runs to claim."
    )
    limit: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="At most this many (1-1000; Ocean sends its buffer room, 300 by default).",
    )
    visibilityTimeoutMs: int = Field(
        default=60_000,
        ge=1000,
        le=600_000,
        description="How long claimed node runs stay hidden from other claims unless acked.",
    )
    exclude: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="Node uids (nodeUid) or node run ids to skip (a worker's saturated kinds).",
    )


class AckRequest(Lenient):
    nodeRunIdentifier: str = Field(
        pattern=r"^wfnr_[A-Za-z0-9]{16}$", description="The claimed node run."
    )


class OkResponse(BaseModel):
    ok: bool = Field(description="true")


class WorkflowRunResponse(BaseModel):
    ok: bool
    workflowRun: WorkflowRun


class AcceptedRun(BaseModel):
    identifier: str = Field(description="The run's id: GET it later.")
    status: str = Field(description="IN_PROGRESS")


class AcceptedRunResponse(BaseModel):
    ok: bool
    workflowRun: AcceptedRun


ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {
        "model": AcceptedRunResponse,
        "description": "Accepted; the engine has not created the run yet (Location: the run).",
    }
}


class WorkflowRunsResponse(BaseModel):
    ok: bool
    workflowRuns: list[WorkflowRun] = Field(description="Newest first.")


class AckResponse(BaseModel):
    ok: bool
    acked: bool


class ClaimedNodeRunsResponse(BaseModel):
    ok: bool
    nodeRuns: list[dict[str, Any]] = Field(
        description="Node runs with pendingExecution, claimedUntil, installationId, "
        "config and node.config (the rendered INTEGRATION_ACTION config)."
    )


class WorkflowResponse(BaseModel):
    ok: bool
    workflow: Workflow


class WorkflowsResponse(BaseModel):
    ok: bool
    workflows: list[Workflow]


class ErrorResponse(BaseModel):
    ok: bool = Field(description="false")
    error: str = Field(description="A code: not_found, invalid_request, forbidden...")
    message: str = Field(description="What is wrong, naming the field.")


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (401, "No, expired or forged access token."),
        (403, "The caller may not do this."),
        (404, "Not found, or not visible to the caller."),
        (409, "Conflicts with the current state."),
        (413, "The body is larger than SWITCHYARD_REQUEST_BODY_MAX_BYTES."),
        (422, "Invalid input; the message names each bad field."),
    )
}
