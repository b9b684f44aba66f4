"""Test helpers: wait on facts, never on sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

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
