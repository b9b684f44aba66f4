"""Test helpers: wait on facts, never on sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from switchyard.schemas.settings import Settings

T = TypeVar("T")


async def until(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], bool] = bool,
    *,
    within: float = 10.0,
    interval: float = 0.02,
) -> T:
    """Await ``probe`` until ``check(value)`` holds; fail with the last value seen."""
    deadline = time.monotonic() + within
    value = await probe()
    while not check(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s; last value: {value!r}")
        await asyncio.sleep(interval)
        value = await probe()
    return value


def private_redis_db(settings: Settings, session_tag: str) -> Settings:
    """``settings`` on a Redis database of this test session's own (1-15).

    Armed timers are one sorted set per database: a timer service of another test
    session on the same Redis would fire this session's timers into its own inbox
    (and remove them). Tests that run a timer service use this.
    """
    db = 1 + int(session_tag, 16) % 15
    base = settings.redis_url.rsplit("/", 1)[0]
    return settings.model_copy(update={"redis_url": f"{base}/{db}"})
