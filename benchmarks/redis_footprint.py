"""What one completed ``chain`` run leaves in Redis, key by key.

    python -m benchmarks.redis_footprint                # 1,000 chain runs
    python -m benchmarks.redis_footprint --runs 3000 --json out.json

Starts its own stack (``switchyard stack up`` in a fresh home, on ports of its own, so
it can run beside ``benchmarks.run``), runs ``--runs`` chain runs (SELF_SERVE_TRIGGER →
CONDITION → KAFKA → KAFKA) through the real engine and a worker, then takes
``MEMORY USAGE`` (exact: ``SAMPLES 0``) of every key before and after and prints, per
key group, the bytes per completed run and the key's encoding, beside Redis's own
``used_memory`` growth per run. A run's own keys are grouped by their suffix; keys
shared by runs (indexes, node-run buckets, the run-event streams) by their name with
the varying part elided, their growth divided among the runs. Every inbox partition
has its own indexes and streams (``{p…}`` in their names): a group sums them all.

Two totals: everything, and what a completed run keeps for good, i.e. without the
run's event list (it expires ``RUN_EVENTS_TTL_SECONDS`` after ``run.completed``) and
without the partitions' run-event streams (each capped at about ``RUNS_EVENTS_MAXLEN``
entries, so their share per run shrinks as runs go by). Figures, never assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from benchmarks import workloads
from benchmarks.run import _default_cache
from benchmarks.stack import BenchStack, Ports, bench_settings
from benchmarks.switchyard_target import SwitchyardTarget
from switchyard.engine.store import keys

# Run keys are ``sy:run:{p<i>.<n>}:wfr_…``; every per-partition key carries the tag.
_TAG = re.compile(r"\{p[0-9]+\.[0-9]+\}")
_RUN_ID = re.compile(r"wfr_[A-Za-z0-9]{16}")
_VARYING = (
    (re.compile(r"^sy:nr:.*$"), "sy:nr:<2 chars>"),
    (re.compile(r"^sy:claim:.*$"), "sy:claim:<node run>"),
    (re.compile(r"^sy:ext:.*$"), "sy:ext:<external id>"),
    (re.compile(r"^sy:runs:by:.*$"), "sy:runs:by:<creator>"),
)
# Keys a completed run does not keep for good (see the module docstring).
_TRANSIENT = {"sy:run:{<p>}:<run>:events", keys.runs_events("{<p>}")}


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def group_of(key: str) -> str:
    """The key's group: its name with the partition's tag, the run id (or another
    varying part) elided, so the partitions' indexes are one group."""
    named = _RUN_ID.sub("<run>", _TAG.sub("{<p>}", key))
    for pattern, group in _VARYING:
        if pattern.match(named):
            return group
    return named


async def snapshot(client: aioredis.Redis) -> dict[str, dict[str, Any]]:
    """Every key's group → total bytes, key count, Redis type and encodings."""
    groups: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"bytes": 0, "keys": 0, "type": "", "encodings": set()}
    )
    async for raw in client.scan_iter(count=1000):
        key = raw.decode()
        size = await client.memory_usage(key, samples=0)
        if size is None:  # expired between SCAN and MEMORY USAGE
            continue
        entry = groups[group_of(key)]
        entry["bytes"] += int(size)
        entry["keys"] += 1
        entry["type"] = _text(await client.type(key))
        entry["encodings"].add(_text(await client.object("encoding", key)))
    return groups


async def complete_runs(stack: BenchStack, count: int, window: int) -> float:
    """``count`` chain runs, ``window`` in flight at a time; seconds taken."""
    started = time.monotonic()
    async with SwitchyardTarget(stack.settings, "bench-chain", observe_steps=False) as target:
        fired = 0
        for _ in range(min(window, count)):
            await target.trigger()
            fired += 1
        for done in range(count):
            await asyncio.wait_for(target.completed.get(), 60)
            if fired < count:
                await target.trigger()
                fired += 1
            if (done + 1) % 500 == 0:
                _say(f"{done + 1}/{count} runs completed")
    return time.monotonic() - started


def table(before: dict[str, Any], after: dict[str, Any], runs: int) -> list[dict[str, Any]]:
    rows = []
    for group in sorted(set(before) | set(after)):
        old, new = before.get(group), after.get(group)
        grown = (new["bytes"] if new else 0) - (old["bytes"] if old else 0)
        if grown == 0:
            continue
        entry = new or old or {}
        rows.append({
            "group": group, "type": entry["type"],
            "encodings": ",".join(sorted(entry["encodings"])),
            "keys_added": (new["keys"] if new else 0) - (old["keys"] if old else 0),
            "bytes_per_run": round(grown / runs),
        })  # fmt: skip
    return sorted(rows, key=lambda r: -r["bytes_per_run"])


def render(rows: list[dict[str, Any]], figures: dict[str, Any]) -> str:
    lines = [f"{'key group':<34} {'type':<7} {'encoding':<22} {'keys+':>7} {'B/run':>7}"]
    lines += [
        f"{r['group']:<34} {r['type']:<7} {r['encodings']:<22} {r['keys_added']:>7} "
        f"{r['bytes_per_run']:>7}"
        for r in rows
    ]
    lines.append(
        f"sum of keys {figures['keys_bytes_per_run']} B/run; kept for good (without the "
        f"run's event list and the capped run-event streams) {figures['kept_bytes_per_run']} "
        f"B/run; used_memory growth {figures['used_memory_per_run']} B/run "
        f"({figures['runs']} runs in {figures['seconds']} s)"
    )
    return "\n".join(lines)


async def measure(
    stack: BenchStack, runs: int, window: int, *, after_ttl: bool = False
) -> dict[str, Any]:
    worker, _ = stack.start_worker("chain")
    client = stack.redis()
    try:
        # A few runs first, so that keys every run shares exist before the snapshot.
        await complete_runs(stack, min(20, runs), window)
        await asyncio.sleep(0.5)
        before, used_before = await snapshot(client), await _used(client)
        seconds = await complete_runs(stack, runs, window)
        await asyncio.sleep(0.5)  # the last outbox steps forgotten
        after, used_after = await snapshot(client), await _used(client)
        later = None
        if after_ttl:
            _say(f"waiting {keys.RUN_EVENTS_TTL_SECONDS + 2} s for the event lists to expire")
            await asyncio.sleep(keys.RUN_EVENTS_TTL_SECONDS + 2)
            later = await snapshot(client), await _used(client)
    finally:
        await client.aclose()
        stack.stop_worker(worker)
    found: dict[str, Any] = {}
    rows = table(before, after, runs)
    total = sum(r["bytes_per_run"] for r in rows)
    if later is not None:
        rows_later = table(before, later[0], runs)
        found["after_ttl"] = {
            "rows": rows_later, "keys_bytes_per_run": sum(r["bytes_per_run"] for r in rows_later),
            "used_memory_per_run": round((later[1] - used_before) / runs),
        }  # fmt: skip
    return found | {
        "runs": runs, "seconds": round(seconds, 1), "rows": rows,
        "keys_bytes_per_run": total,
        "kept_bytes_per_run": sum(r["bytes_per_run"] for r in rows
                                  if r["group"] not in _TRANSIENT),
        "used_memory_per_run": round((used_after - used_before) / runs),
    }  # fmt: skip


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _used(client: aioredis.Redis) -> int:
    return int((await client.info("memory"))["used_memory"])


async def main(args: argparse.Namespace) -> dict[str, Any]:
    # Ports below the ephemeral range (32768 up), where a client socket of the stack's
    # own could hold a port before its server binds it.
    settings = bench_settings(args.home.resolve(), Ports(kafka=31092, controller=31093,
                              redis=31379, bridge=31080, ops=31101), _default_cache())  # fmt: skip
    stack = BenchStack(settings, say=_say)
    stack.up()
    try:
        await stack.define(workloads.chain())
        return await measure(stack, args.runs, args.window, after_ttl=args.after_ttl)
    finally:
        if not args.keep_stack:
            stack.down()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--window", type=int, default=50, help="runs in flight at a time")
    parser.add_argument("--home", type=Path, default=Path("/tmp/switchyard-footprint"))
    parser.add_argument(
        "--after-ttl", action="store_true",
        help="measure again once the completed runs' event lists have expired",
    )  # fmt: skip
    parser.add_argument("--keep-stack", action="store_true", help="leave the stack up")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    arguments = parser.parse_args()
    figures = asyncio.run(main(arguments))
    print(render(figures["rows"], figures))
    if "after_ttl" in figures:
        later = figures["after_ttl"]
        print(f"\n{keys.RUN_EVENTS_TTL_SECONDS + 2} s later (event lists expired):")
        print(render(later["rows"], {**figures, **later, "kept_bytes_per_run": "-"}))
    if arguments.json:
        arguments.json.write_text(json.dumps(figures, indent=2) + "\n")
