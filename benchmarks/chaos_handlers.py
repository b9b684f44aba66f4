"""The chaos run's Kafka worker handler: applies its effect at a deduplicating receiver,
then completes the KAFKA node, echoing its payload.

The effect is an HTTP call with ``Idempotency-Key: <node-run id>``, what a real user's
handler does with an external API (a payment, a ticket): the worker delivers a node
run at least once (a kill before its offset commit repeats it), and the key makes the
receiver apply it once. A Redis ``SET NX`` would only do for an effect kept in our own
Redis; an HTTP receiver is what the promise is about.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx

from switchyard.consumers import WorkContext

RECEIVER_ENV = "CHAOS_RECEIVER_URL"
_client: httpx.AsyncClient | None = None


async def echo(ctx: WorkContext) -> dict[str, Any]:
    global _client
    url = os.environ.get(RECEIVER_ENV)
    if url:
        _client = _client or httpx.AsyncClient(timeout=10.0)
        await _apply(_client, url, ctx)
    return {"echo": ctx.payload}


async def _apply(client: httpx.AsyncClient, url: str, ctx: WorkContext) -> None:
    # The receiver outlives every kill; a refused connection is the loopback's backlog
    # under a burst, so the call is repeated (the key makes that harmless).
    for delay in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0):
        try:
            answer = await client.post(
                url, json={"n": ctx.payload.get("n"), "run": ctx.run_id},
                headers={"Idempotency-Key": ctx.node_run_id},
            )  # fmt: skip
            answer.raise_for_status()
            return
        except httpx.HTTPError:
            await asyncio.sleep(delay)
    raise RuntimeError(f"the receiver at {url} did not take the effect of {ctx.node_run_id}")
