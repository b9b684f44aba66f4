"""Redis's share of the benchmark's figures: memory per run, and the work (CPU,
command calls) per run, from ``INFO`` and ``MEMORY USAGE`` on the benchmark's Redis."""

from __future__ import annotations

from statistics import fmean
from typing import Any

from benchmarks.stack import BenchStack
from switchyard.engine.store import keys


async def used(stack: BenchStack) -> int:
    client = stack.redis()
    try:
        return int((await client.info("memory"))["used_memory"])
    finally:
        await client.aclose()


async def stats(stack: BenchStack) -> dict[str, float]:
    """Redis's CPU seconds and per-command call counts and time, cumulative."""
    client = stack.redis()
    try:
        cpu = await client.info("cpu")
        commands = await client.info("commandstats")
    finally:
        await client.aclose()
    found = {"cpu_s": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])}
    for name, row in commands.items():
        found[f"{name}.calls"] = float(row["calls"])
        found[f"{name}.usec"] = float(row["usec"])
    return found


async def work(stack: BenchStack, before: dict[str, float]) -> dict[str, float]:
    """Redis work per chain run: CPU, and calls of the commands the engine sends most."""
    after = await stats(stack)
    client = stack.redis()
    try:
        runs = max(1, int(await client.zcard("sy:runs:wf:bench-chain")))
    finally:
        await client.aclose()
    work = {"cpu_ms": round(1000 * (after["cpu_s"] - before["cpu_s"]) / runs, 3)}
    calls = {k: after[k] - before.get(k, 0.0) for k in after if k.endswith(".calls")}
    top = sorted(calls, key=lambda k: -calls[k])[:5]
    for key in [*top, *(k for k in calls if "evalsha" in k and k not in top)]:
        value = calls[key]
        name = key.removeprefix("cmdstat_").removesuffix(".calls")
        work[f"{name}_calls"] = round(value / runs, 2)
        usec = after[key.replace(".calls", ".usec")] - before.get(key.replace(".calls", ".usec"), 0)
        work[f"{name}_usec"] = round(usec / runs, 1)
    return work


async def per_run(stack: BenchStack, before: int) -> dict[str, Any]:
    client = stack.redis()
    try:
        used = int((await client.info("memory"))["used_memory"])
        runs = int(await client.zcard("sy:runs:wf:bench-chain"))
        completed = int(await client.zcount("sy:runs:status:COMPLETED", "-inf", "+inf"))
        sample = [m.decode() for m in await client.zrange("sy:runs:wf:bench-chain", 0, 99)]
        per_key: dict[str, list[int]] = {"run hash": [], "logs": []}
        for run_id in sample:
            per_key["run hash"].append(int(await client.memory_usage(keys.run(run_id)) or 0))
            per_key["logs"].append(int(await client.memory_usage(keys.logs(run_id)) or 0))
    finally:
        await client.aclose()
    return {
        "runs": runs, "completed_runs_in_redis": completed,
        "used_memory_delta_per_run": round((used - before) / max(runs, 1)),
        "memory_usage_per_run": {k: round(fmean(v)) for k, v in per_key.items() if v},
    }  # fmt: skip
