"""How a process runs: its event loop (``SWITCHYARD_EVENT_LOOP``) and its garbage
collector.

uvloop by default: its transports write sockets and schedule callbacks in C, where
asyncio spends Python time on each (socket writes alone were 16% of the engine's
samples under load). ``asyncio`` stays selectable, for a platform uvloop lacks or to
tell a fault of the loop from one of ours.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

from switchyard.schemas.settings import Settings

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], settings: Settings) -> T:
    """``asyncio.run(main)`` on the loop ``settings`` names, after :func:`quiet_gc`."""
    quiet_gc()
    if settings.event_loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def quiet_gc() -> None:
    """Fewer, cheaper collections: what is loaded at start-up (modules, settings,
    compiled templates) leaves the collector's view, and the youngest generation is
    collected every 10,000 allocations instead of 700. A service allocates many
    short-lived objects per event, few of them in cycles; collections were ~5% of the
    engine's step."""
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(10_000, second, third)
