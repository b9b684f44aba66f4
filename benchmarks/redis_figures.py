"""Redis's share of the benchmark's figures: memory per run, and the work (CPU,
command calls) per run, from ``INFO`` and ``MEMORY USAGE`` on the benchmark's Redis."""

from __future__ import annotations

from statistics import fmean
from typing import Any

import redis.asyncio as aioredis

from benchmarks.stack import BenchStack
from switchyard.engine.store import keys
from switchyard.engine.store.slots import partition_tag

WORKFLOW = "bench-chain"


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
        runs = max(1, await _count(client, _tags(stack), WORKFLOW))
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
        tags = _tags(stack)
        runs = await _count(client, tags, WORKFLOW)
        completed = 0
        for tag in tags:
            key = keys.runs_with_status("COMPLETED", tag)
            completed += int(await client.zcount(key, "-inf", "+inf"))
        per_key: dict[str, list[int]] = {"run hash": [], "logs": []}
        for run_id, tag in await _oldest(client, tags, WORKFLOW, 100):
            per_key["run hash"].append(int(await client.memory_usage(keys.run(run_id, tag)) or 0))
            per_key["logs"].append(int(await client.memory_usage(keys.logs(run_id, tag)) or 0))
    finally:
        await client.aclose()
    return {
        "runs": runs, "completed_runs_in_redis": completed,
        "used_memory_delta_per_run": round((used - before) / max(runs, 1)),
        "memory_usage_per_run": {k: round(fmean(v)) for k, v in per_key.items() if v},
    }  # fmt: skip


def _tags(stack: BenchStack) -> list[str]:
    return tags_of(stack.settings.inbox_partitions)


def tags_of(partitions: int) -> list[str]:
    """Every inbox partition's tag: each keeps its own run indexes and timers."""
    return [partition_tag(p, partitions) for p in range(partitions)]


async def _count(client: aioredis.Redis, tags: list[str], workflow: str) -> int:
    return sum([int(await client.zcard(keys.runs_of_workflow(workflow, tag))) for tag in tags])


async def runs_of(client: aioredis.Redis, partitions: int, workflow: str) -> int:
    """How many runs of ``workflow`` Redis holds, over every partition's index."""
    return await _count(client, tags_of(partitions), workflow)


async def run_ids_of(client: aioredis.Redis, partitions: int, workflow: str) -> list[str]:
    """Every run id of ``workflow``, over every partition's index."""
    found: list[str] = []
    for tag in tags_of(partitions):
        members = await client.zrange(keys.runs_of_workflow(workflow, tag), 0, -1)
        found += [m.decode() if isinstance(m, bytes) else str(m) for m in members]
    return found


async def timers_pending(client: aioredis.Redis, partitions: int) -> int:
    """Armed timers, over every partition's set."""
    return sum([int(await client.zcard(keys.timers(tag))) for tag in tags_of(partitions)])


async def _oldest(
    client: aioredis.Redis, tags: list[str], workflow: str, count: int
) -> list[tuple[str, str]]:
    """The ``count`` oldest runs of ``workflow`` over every partition, with their tags."""
    found: list[tuple[float, str, str]] = []
    for tag in tags:
        members: Any = await client.zrange(
            keys.runs_of_workflow(workflow, tag), 0, count - 1, withscores=True
        )
        found += [(float(score), member.decode(), tag) for member, score in members]
    return [(run_id, tag) for _, run_id, tag in sorted(found)[:count]]
