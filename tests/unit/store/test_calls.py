"""side_by_side: every call awaited, in order, never more than the limit at once (a
redis-py pool refuses its 101st connection)."""

from __future__ import annotations

import asyncio

from switchyard.engine.store.calls import side_by_side


async def test_at_most_the_limit_run_at_once_and_results_keep_their_order() -> None:
    running, peak = 0, 0

    async def call(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * (n % 3))
        running -= 1
        return n * n

    assert await side_by_side((call(n) for n in range(500)), limit=16) == [
        n * n for n in range(500)
    ]
    assert peak == 16
    assert await side_by_side([]) == []
