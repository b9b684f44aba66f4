"""The chaos run's Kafka worker handler: completes a KAFKA node at once, echoing it."""

from __future__ import annotations

from typing import Any

from switchyard.consumers import WorkContext


async def echo(ctx: WorkContext) -> dict[str, Any]:
    return {"echo": ctx.payload}
