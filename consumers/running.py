"""Running one handler for one node run and turning what it did into an update.

Shared by the Kafka worker, the claim/ack worker and the test environment, so that
all three end a node run the same way: an exception is a FAILED result with an
ERROR log line, never an exception escaping into the worker's loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from switchyard.consumers import metrics
from switchyard.consumers.context import Handler, Outcome, WorkContext
from switchyard.schemas import NodeRunUpdated

log = logging.getLogger("switchyard.worker")


def as_outcome(returned: object) -> Outcome:
    """A handler's return value as an :class:`Outcome` (TypeError for anything else)."""
    if isinstance(returned, Outcome):
        return returned
    if returned is None:
        return Outcome.success()
    if isinstance(returned, dict):
        return Outcome.success(returned)
    raise TypeError(
        f"a handler must return an Outcome, a dict (the output) or None, "
        f"not {type(returned).__name__}"
    )


def failure_output(error: BaseException) -> dict[str, Any]:
    # The engine keeps only error.message of a FAILED output: the type goes in it.
    return {"error": {"message": f"{type(error).__name__}: {error}"}}


async def run_handler(
    handler: Handler, ctx: WorkContext, *, node: str | None = None
) -> NodeRunUpdated | None:
    """Await ``handler(ctx)``; return the update that ends (or advances) the node run.

    Cancellation (a forced shutdown) propagates: the node run is then left to be
    redelivered, never reported FAILED for something the worker did to itself.
    With ``node`` (the workers' label, see :mod:`switchyard.consumers.metrics`), the
    call is timed by result and an exception counted by its class.
    """
    started = time.perf_counter()
    try:
        outcome = as_outcome(await handler(ctx))
    except asyncio.CancelledError:
        raise
    except Exception as error:
        log.exception("handler failed for %s", ctx.node_run_id)
        ctx.log.error(f"handler failed: {type(error).__name__}: {error}")
        if node is not None:
            metrics.handled(node, "error", time.perf_counter() - started, error)
        return ctx.update_for(Outcome.failed(failure_output(error)))
    if node is not None:
        metrics.handled(node, metrics.result_of(outcome), time.perf_counter() - started)
    return ctx.update_for(outcome)
