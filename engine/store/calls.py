"""Script calls side by side, a bounded number at a time.

A Redis Cluster pipeline does not load a script its node lacks (NOSCRIPT), so calls of
several slots go side by side instead, each on a connection of its own. redis-py's
pool holds at most 100 connections and refuses the next (MaxConnectionsError, at
once, not after a wait): a batch of 500 prune calls, or a claim learning 1,000 node
uids, must not take a connection each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

T = TypeVar("T")

# Enough for one call per inbox partition of a batch (12 by default) at once.
SIDE_BY_SIDE = 16


async def side_by_side(calls: Iterable[Awaitable[T]], limit: int = SIDE_BY_SIDE) -> list[T]:
    """Await ``calls`` concurrently, at most ``limit`` at a time; results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    return await asyncio.gather(*(one(call) for call in calls))
