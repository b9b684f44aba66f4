"""Handlers the subprocess workers of the tests load with ``switchyard worker run``."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from switchyard.consumers import WorkContext


async def hang(ctx: WorkContext) -> dict[str, str]:
    """Say it has started (a marker file named by the node run), then never finish."""
    marker = Path(os.environ["SDK_TEST_MARKERS"], ctx.node_run_id)
    await asyncio.to_thread(marker.write_text, str(os.getpid()))
    await asyncio.Event().wait()
    return {}


async def noop(ctx: WorkContext) -> None:
    return None
