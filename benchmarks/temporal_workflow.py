"""The ``chain`` shape on Temporal: a branch, then two activities that return at once;
and the ``seq`` shape: N activities one after another, each returning its clock.

Kept apart from the driver: Temporal's workflow sandbox re-imports this module, so it
imports nothing but the SDK.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow


@activity.defn(name="first")
async def first(payload: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True}


@activity.defn(name="second")
async def second(payload: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True}


@workflow.defn(name="BenchChain")
class BenchChain:
    @workflow.run
    async def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        if inputs["n"] < 0:  # the CONDITION node
            return {}
        timeout = timedelta(seconds=30)
        one = await workflow.execute_activity(
            first, {"service": inputs["service"], "n": inputs["n"]}, start_to_close_timeout=timeout
        )
        return await workflow.execute_activity(
            second, {"service": inputs["service"], "previous": one["ok"]},
            start_to_close_timeout=timeout,
        )  # fmt: skip


@activity.defn(name="step")
async def step(payload: dict[str, Any]) -> float:
    """No work; the time it ran (ms since the epoch), for the per-step figures."""
    return time.time() * 1000


@workflow.defn(name="BenchSeq")
class BenchSeq:
    @workflow.run
    async def run(self, inputs: dict[str, Any]) -> list[float]:
        timeout = timedelta(seconds=30)
        ran = []
        for k in range(1, int(inputs["steps"]) + 1):
            payload = {"service": inputs["service"], "step": k}
            ran.append(
                await workflow.execute_activity(step, payload, start_to_close_timeout=timeout)
            )
        return ran
