"""The organization's settings as the engine reads them: how Port's execution agent
takes ``agent: true`` webhooks.

The bridge's ``PATCH /v1/organization`` stores the settings document in ``sy:org``
(field ``settings``); Port's agent sends ``{settings: {portAgentStreamerName: "KAFKA" |
"POLLING"}}`` at start-up. Absent, unreadable or anything else: ``KAFKA``.
"""

from __future__ import annotations

from typing import Literal

import orjson
import redis.asyncio as aioredis

from switchyard.engine.store import keys

AgentStreamer = Literal["KAFKA", "POLLING"]


def streamer_of(raw: bytes | str | None) -> AgentStreamer:
    """``portAgentStreamerName`` of a stored settings document, KAFKA unless POLLING."""
    if not raw:
        return "KAFKA"
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "KAFKA"
    name = document.get("portAgentStreamerName") if isinstance(document, dict) else None
    return "POLLING" if name == "POLLING" else "KAFKA"


async def agent_streamer(client: aioredis.Redis) -> AgentStreamer:
    """How the agent takes its work now (one HGET)."""
    raw: bytes | str | None = await client.hget(keys.ORG, "settings")
    return streamer_of(raw)
