"""``POST /v1/workflows/nodes/runs/{wfnr}/respond``: a responder answers an INPUT node.

The bridge checks what it can, in this order, and produces ``InputResponded`` to the
inbox (keyed by the run id); the engine counts the answer and moves the run on:

* 404: no such node run, or its run is not visible to the caller (responders of the
  run's INPUT nodes may view it);
* 409: the node run is not an INPUT;
* 403: the caller is not one of its ``responders``;
* 409: it is not waiting any more, or this responder has answered it;
* 422: ``buttonIdentifier`` is not one of the form's buttons, or ``inputs`` don't fit
  the rendered form (the messages of a trigger's inputs: ``inputs.<field>: ...``).

"Answers once" holds under races: the responder is recorded with ``HSETNX`` (key
``sy:bridge:answered:<node run>``) before the event is produced, so of two
concurrent answers exactly one gets 200; and the engine refuses a second answer of
the same responder as well (``already_responded``), whoever produced it. Answers of
different responders that race for a node which the first one completes are both
200: the engine records the later one as ``input_closed``, not counted.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from switchyard.bridge.auth import Ctx, CurrentActor
from switchyard.bridge.credentials import Actor
from switchyard.bridge.errors import conflict, forbidden, invalid, json_response, not_found
from switchyard.bridge.models import ERRORS, OkResponse
from switchyard.bridge.node_runs import NodeRunIdPath
from switchyard.bridge.responders import is_responder
from switchyard.bridge.views import LoadedRun, can_view, load_run
from switchyard.engine.machine.approval import responses_of
from switchyard.engine.machine.state import NodeRunState
from switchyard.engine.store import keys
from switchyard.schemas import InputConfig, InputResponded, encode, validate_inputs
from switchyard.schemas.workflow import InputForm

router = APIRouter(tags=["node runs"])

# The engine's state keeps every answer for good; the bridge's own note only has to
# outlive the time between an answer and the engine applying it.
_ANSWERED_TTL_S = 30 * 24 * 3600


class RespondRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    buttonIdentifier: str = Field(min_length=1, description="One of the form's buttons.")
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="Values for the node's rendered userInputs."
    )


async def _waiting_input(
    ctx: Ctx, actor: Actor, node_run_id: str
) -> tuple[LoadedRun, NodeRunState, InputConfig]:
    owner = await ctx.runs.run_of_node_run(node_run_id)
    loaded = await load_run(ctx, owner) if owner else None
    node_run = loaded.state.node_run(node_run_id) if loaded else None
    if (
        loaded is None
        or node_run is None
        or not await can_view(ctx, actor, loaded.state, loaded.workflow)
    ):
        raise not_found(f"node run {node_run_id} not found")
    node = loaded.workflow.node(node_run.node)
    config = node.config if node is not None else None
    if not isinstance(config, InputConfig):
        raise conflict(
            f"node run {node_run_id} is not an INPUT node run; there is nothing to answer"
        )
    if not is_responder(actor, config.responders):
        raise forbidden(f"{actor.name} is not a responder of node run {node_run_id}")
    if node_run.status == "COMPLETED":
        raise conflict(
            f"node run {node_run_id} is COMPLETED ({node_run.result}); it takes no more answers"
        )
    return loaded, node_run, config


def _check_answer(
    node_run: NodeRunState, config: InputConfig, body: RespondRequest
) -> dict[str, Any]:
    """The inputs to send (defaults applied), or 422 naming the field."""
    buttons = [button.identifier for button in config.user_inputs.buttons]
    if body.buttonIdentifier not in buttons:
        raise invalid(
            f"body.buttonIdentifier: must be one of {', '.join(buttons)} "
            f"(got {body.buttonIdentifier!r})"
        )
    output = node_run.output if isinstance(node_run.output, dict) else {}
    try:
        form = InputForm.model_validate(output.get("userInputs"))
    except ValidationError:  # the engine stored what it validated; fall back to the definition
        form = config.user_inputs
    return validate_inputs(form, body.inputs, of="this form")


@router.post(
    "/v1/workflows/nodes/runs/{node_run_id}/respond",
    response_model=OkResponse,
    summary="Answer an INPUT node (an approval)",
    responses=ERRORS,
)
async def respond(
    node_run_id: NodeRunIdPath, body: RespondRequest, ctx: Ctx, actor: CurrentActor
) -> Response:
    loaded, node_run, config = await _waiting_input(ctx, actor, node_run_id)
    if any(
        r.get("submitterInfo", {}).get("submittedBy") == actor.name for r in responses_of(node_run)
    ):
        raise conflict(f"{actor.name} has already answered node run {node_run_id}")
    inputs = _check_answer(node_run, config, body)
    answered = keys.answered(node_run_id)
    run_id = loaded.state.run_id
    # Not a MULTI (redis-py's async cluster transactions run on another thread's loop):
    # a TTL missed by a crash in between is housekeeping the pruner does anyway.
    async with ctx.redis.pipeline(transaction=False) as pipe:
        pipe.hsetnx(answered, actor.name, run_id)
        pipe.expire(answered, _ANSWERED_TTL_S)
        first, _ = await pipe.execute()
    if not first:
        raise conflict(f"{actor.name} has already answered node run {node_run_id}")
    event = InputResponded(
        run_id=run_id,
        node_run_id=node_run_id,
        button_identifier=body.buttonIdentifier,
        inputs=inputs,
        submitted_by=actor.name,
        submitted_at=ctx.clock(),
    )
    try:
        await ctx.producer.send_and_wait(ctx.registry.inbox.name, run_id, encode(event))
    except BaseException:
        # Not produced: the answer was not given, and the responder may try again.
        await ctx.redis.hdel(answered, actor.name)
        raise
    return json_response({"ok": True})
