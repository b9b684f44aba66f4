"""Port's *action* runs (the self-service actions that predate workflows): never pending.

An Ocean integration claims action runs on every cycle beside workflow node runs.
Switchyard has no action runs, so the claim validates its body and answers "nothing
pending" (``{ok, runs: []}``, what Ocean parses), a lookup by external id finds none
(Ocean asks for an action run first, then for a node run), and an ack names a run
that does not exist (404). Machine credentials and Admins only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from switchyard.bridge.auth import CurrentActor
from switchyard.bridge.errors import forbidden, json_response, not_found
from switchyard.bridge.models import ERRORS, Lenient
from switchyard.bridge.permissions import may_operate

router = APIRouter(tags=["action runs"])


class ActionClaimRequest(Lenient):
    installationId: str = Field(min_length=1, max_length=200, description="Who is asking.")
    limit: int = Field(default=10, ge=1, le=1000, description="At most this many (1-1000).")
    visibilityTimeoutMs: int = Field(default=60_000, ge=1000, le=600_000)
    exclude: list[str] = Field(default_factory=list, max_length=1000)


class ActionAckRequest(Lenient):
    runId: str = Field(min_length=1, max_length=200, description="The claimed action run.")


class ActionRunsResponse(BaseModel):
    ok: bool
    runs: list[dict[str, object]] = Field(description="Always empty: no action runs here.")


@router.post(
    "/v1/actions/runs/claim-pending",
    response_model=ActionRunsResponse,
    summary="Claim pending action runs (there are none)",
    responses=ERRORS,
)
async def claim_action_runs(body: ActionClaimRequest, actor: CurrentActor) -> Response:
    if not may_operate(actor):
        raise forbidden(f"{actor.name} may not claim runs (Admins and machines may)")
    return json_response({"ok": True, "runs": []})


@router.get(
    "/v1/actions/runs",
    response_model=ActionRunsResponse,
    summary="Find action runs (there are none)",
    responses=ERRORS,
)
async def find_action_runs(
    actor: CurrentActor,
    external_run_id: Annotated[str | None, Query(max_length=1000)] = None,
    version: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    if not may_operate(actor):
        raise forbidden(f"{actor.name} may not read runs (Admins and machines may)")
    return json_response({"ok": True, "runs": []})


@router.patch(
    "/v1/actions/runs/ack",
    summary="Acknowledge a claimed action run (none exist)",
    responses=ERRORS,
)
async def ack_action_run(body: ActionAckRequest, actor: CurrentActor) -> Response:
    if not may_operate(actor):
        raise forbidden(f"{actor.name} may not ack runs (Admins and machines may)")
    raise not_found(f"action run {body.runId} not found; Switchyard runs workflows only")
