"""Switchyard's benchmarks in one command: throughput, latency and memory, against the
raw Kafka ceiling and against Temporal.

    python -m benchmarks.run                 # everything, ~10 minutes
    python -m benchmarks.run --quick         # seconds per phase (the smoke test's mode)
    python -m benchmarks.run --workloads chain --skip temporal,profile

Starts its own stack (``switchyard stack up`` in a fresh home, on its own ports),
the benchmark workers, the raw-Kafka pipeline and Temporal's dev server; prints a
table and writes ``benchmarks/results/<timestamp>.json`` (and ``latest.json``).
Figures, never assertions: nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import fmean
from typing import Any

from benchmarks import ceiling, deadlines, profile, workloads
from benchmarks.load import ClosedLoop, closed_loop, open_loop
from benchmarks.report import table
from benchmarks.stack import BenchStack, Ports, bench_settings
from benchmarks.switchyard_target import SwitchyardTarget

RESULTS = Path(__file__).parent / "results"
FRACTIONS = (0.25, 0.50, 0.80)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Plan:
    """Phase lengths: the full run, or ``--quick`` for a smoke test."""

    def __init__(self, quick: bool, seconds: float | None) -> None:
        self.quick = quick
        self.closed = seconds or (3.0 if quick else 60.0)
        self.warmup = 1.0 if quick else 5.0
        self.open = 2.0 if quick else 20.0
        self.window = 200
        self.in_flight = 500 if quick else 10_000
        self.profile = 5.0 if quick else 20.0
        self.peer_closed = 3.0 if quick else 30.0


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    others = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu"], capture_output=True,
                            text=True, check=False).stdout.splitlines()[1:8]  # fmt: skip
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(), "loadavg_at_start": [round(x, 2) for x in load],
        "busiest_processes_at_start": [line.strip() for line in others],
    }  # fmt: skip


async def _redis_used(stack: BenchStack) -> int:
    client = stack.redis()
    try:
        return int((await client.info("memory"))["used_memory"])
    finally:
        await client.aclose()


async def max_rate(target: SwitchyardTarget, name: str, plan: Plan) -> ClosedLoop:
    """Caches warmed, then the closed loop with ``plan.window`` in flight: the maximum rate."""
    await closed_loop(target, window=50, warmup=0, seconds=plan.warmup)  # warm caches
    _say(f"{name}: closed loop, {plan.window} in flight, {plan.closed:.0f} s")
    return await closed_loop(target, window=plan.window, warmup=plan.warmup, seconds=plan.closed)


def closed_figures(closed: ClosedLoop, name: str) -> dict[str, Any]:
    """The closed loop's JSON, with node runs/s (each run of ``name`` counts its node runs)."""
    figures = closed.as_dict()
    figures["node_runs_per_s"] = round(closed.rate * workloads.NODE_RUNS[name], 1)
    return figures


async def workload(stack: BenchStack, name: str, plan: Plan, args: argparse.Namespace,
                   result: dict[str, Any]) -> None:  # fmt: skip
    worker, ready = stack.start_worker(name)
    if name == "webhook":
        await stack.define(workloads.webhook(ready["url"]))
    flow = f"bench-{name}"
    entry: dict[str, Any] = {"node_runs_per_run": workloads.NODE_RUNS[name]}
    redis_before = await _redis_used(stack)
    redis_stats = await _redis_stats(stack)
    completed = 0
    async with SwitchyardTarget(stack.settings, flow, observe_steps=False) as target:
        closed = await max_rate(target, name, plan)
        completed += closed.completed
        entry["closed"] = closed_figures(closed, name)
        entry["rss_mib_under_load"] = {
            p: stack.rss_mib(p) for p in ("engine", "executor", "timers", "bridge")
        }
        if name == "chain":
            result["sizes"] = {t: round(fmean(s)) for t, s in target.sizes.items() if s}
        if name == "chain" and "profile" not in args.skip:
            entry["profile"] = await _profile(stack, target, plan)
    maximum = max(closed.rate, 1.0)
    entry["open"] = []
    async with SwitchyardTarget(stack.settings, flow, observe_steps=name == "chain") as target:
        for fraction in FRACTIONS:
            rate = maximum * fraction
            _say(
                f"{name}: open loop at {rate:.0f} runs/s ({fraction:.0%} of max), {plan.open:.0f} s"
            )
            if name == "chain" and fraction == 0.5:
                # Timers coming due under the load: deadline runs beside the chain.
                phase, entry["timer_lateness_at_50"] = await asyncio.gather(
                    open_loop(target, rate=rate, seconds=plan.open),
                    deadlines.probe(stack.settings, rate=10, seconds=plan.open),
                )
            else:
                phase = await open_loop(target, rate=rate, seconds=plan.open)
            completed += len(phase.completions)
            entry["open"].append({"fraction_of_max": fraction, **phase.as_dict()})
            if name == "chain" and fraction == 0.25:
                result["sizes"].update({t: round(fmean(s)) for t, s in target.sizes.items() if s})
    if name == "chain":
        # Redis growth over every chain run completed so far (warm-up runs included).
        await asyncio.sleep(0.5)
        entry["redis_bytes_per_completed_run"] = await _redis_per_run(stack, redis_before)
        entry["redis_work_per_run"] = await _redis_work(stack, redis_stats)
    stack.stop_worker(worker)
    result["workloads"][name] = entry


async def _redis_stats(stack: BenchStack) -> dict[str, float]:
    """Redis's CPU seconds and per-command call counts and time, cumulative."""
    client = stack.redis()
    try:
        cpu = await client.info("cpu")
        commands = await client.info("commandstats")
    finally:
        await client.aclose()
    stats = {"cpu_s": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])}
    for name, row in commands.items():
        stats[f"{name}.calls"] = float(row["calls"])
        stats[f"{name}.usec"] = float(row["usec"])
    return stats


async def _redis_work(stack: BenchStack, before: dict[str, float]) -> dict[str, float]:
    """Redis work per chain run: CPU, and calls of the commands the engine sends most."""
    after = await _redis_stats(stack)
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


async def _redis_per_run(stack: BenchStack, before: int) -> dict[str, Any]:
    client = stack.redis()
    try:
        used = int((await client.info("memory"))["used_memory"])
        runs = int(await client.zcard("sy:runs:wf:bench-chain"))
        completed = int(await client.zcount("sy:runs:status:COMPLETED", "-inf", "+inf"))
        sample = [m.decode() for m in await client.zrange("sy:runs:wf:bench-chain", 0, 99)]
        from switchyard.engine.store import keys

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


async def _profile(stack: BenchStack, target: SwitchyardTarget, plan: Plan) -> dict[str, Any]:
    pid = stack.pid("engine")
    out = stack.settings.home / "engine-profile.txt"
    spy = profile.record(pid, plan.profile, out) if pid else None
    if spy is None:
        return {"error": "py-spy not found (pip install -e '.[bench]')"}
    _say(f"profile: py-spy on the engine (pid {pid}) at max rate, {plan.profile:.0f} s")
    await closed_loop(target, window=plan.window, warmup=0, seconds=plan.profile + 1)
    _, err = spy.communicate(timeout=60)
    if spy.returncode != 0 or not out.exists():
        return {"error": f"py-spy failed: {err.decode(errors='replace')[-500:]}"}
    summary = profile.summarise(out)
    summary["collapsed_stacks"] = str(out)
    return summary


async def in_flight(stack: BenchStack, plan: Plan, result: dict[str, Any]) -> None:
    """Runs waiting on a KAFKA node no worker serves: engine memory does not follow them."""
    _say(f"in flight: {plan.in_flight} runs waiting on a KAFKA node")
    client = stack.redis()
    before_rss = stack.rss_mib("engine")
    before = int((await client.info("memory"))["used_memory"])
    async with SwitchyardTarget(stack.settings, "bench-hold", observe_steps=False) as target:
        started = time.monotonic()
        await target.trigger_many(plan.in_flight, "bench-hold")
        while int(await client.zcard("sy:runs:wf:bench-hold")) < plan.in_flight:
            if time.monotonic() - started > 300:
                break
            await asyncio.sleep(0.2)
        applied = time.monotonic() - started
    await asyncio.sleep(1.0)
    held = int(await client.zcard("sy:runs:wf:bench-hold"))
    used = int((await client.info("memory"))["used_memory"])
    pending = int(await client.zcard("sy:timers"))
    _say(f"in flight: {pending} timers pending; deadline runs at 20/s")
    lateness = await deadlines.probe(stack.settings, rate=20, seconds=min(10.0, plan.open))
    await client.aclose()
    result["in_flight"] = {
        "runs": held, "seconds_to_apply": round(applied, 1),
        "engine_rss_mib_before": before_rss, "engine_rss_mib": stack.rss_mib("engine"),
        "redis_bytes_per_waiting_run": round((used - before) / max(held, 1)),
        "timers_pending": pending, "timer_lateness": lateness,
    }  # fmt: skip


async def raw_ceiling(stack: BenchStack, plan: Plan, result: dict[str, Any]) -> None:
    bootstrap = stack.settings.kafka_bootstrap_servers
    await ceiling.ensure_topics(bootstrap)
    sizes = result.get("sizes", {})
    prefix = stack.settings.topic_prefix
    shape = ceiling.Shape(
        trigger=sizes.get("trigger", 300),
        request=sizes.get(f"{prefix}node-run-requests", 250),
        update=sizes.get("update", 200),
        event=sizes.get(f"{prefix}run-events", 200),
    )
    procs = [
        stack.spawn("benchmarks.ceiling", role, "--bootstrap", bootstrap,
                    "--shape", ceiling.shape_argument(shape))
        for role in ("relay", "worker")
    ]  # fmt: skip
    try:
        async with ceiling.RawTarget(bootstrap, shape) as target:
            _say(f"raw kafka ceiling: closed loop, {plan.window} in flight, {plan.closed:.0f} s")
            await closed_loop(target, window=50, warmup=0, seconds=plan.warmup)
            closed = await closed_loop(target, window=plan.window, warmup=plan.warmup,
                                       seconds=plan.closed)  # fmt: skip
            phase = await open_loop(target, rate=max(closed.rate, 1) * 0.5, seconds=plan.open)
        result["raw_kafka"] = {"shape": shape.__dict__, "closed": closed.as_dict(),
                               "open_50": phase.as_dict()}  # fmt: skip
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(20)


async def temporal(stack: BenchStack, plan: Plan, result: dict[str, Any]) -> None:
    try:
        from benchmarks import temporal_peer
    except ImportError as error:
        result["temporal"] = {
            "error": f"temporalio not installed ({error}): pip install -e '.[bench]'"
        }
        return
    server = temporal_peer.TemporalServer(stack.settings.home / "temporal")
    try:
        server.start()
    except RuntimeError as error:
        result["temporal"] = {"error": str(error)}
        return
    ready = stack.settings.home / "temporal-worker.ready"
    worker = stack.spawn("benchmarks.temporal_peer", "worker", "--address", server.address,
                         extra_env={"BENCH_READY_FILE": str(ready)})  # fmt: skip
    try:
        while not ready.exists():
            if worker.poll() is not None:
                raise RuntimeError("temporal worker exited")
            await asyncio.sleep(0.1)
        async with temporal_peer.TemporalTarget(server.address) as target:
            _say(f"temporal: closed loop, {plan.window} in flight, {plan.peer_closed:.0f} s")
            await closed_loop(target, window=50, warmup=0, seconds=plan.warmup)
            closed = await closed_loop(target, window=plan.window, warmup=plan.warmup,
                                       seconds=plan.peer_closed)  # fmt: skip
            rate = max(closed.rate, 1) * 0.5
            _say(f"temporal: open loop at {rate:.0f} runs/s (50% of its max)")
            phase = await open_loop(target, rate=rate, seconds=plan.open)
            result["temporal"] = {"closed": closed.as_dict(), "open_50": phase.as_dict(),
                                  "server_rss_mib": server.rss_mib()}  # fmt: skip
    except RuntimeError as error:
        result["temporal"] = {"error": str(error)}
    finally:
        worker.terminate()
        worker.wait(20)
        server.stop()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    plan = Plan(args.quick, args.seconds)
    plan.in_flight = args.in_flight or plan.in_flight
    settings = bench_settings(args.home.resolve(), Ports(kafka=args.kafka_port,
                              controller=args.kafka_port + 1, redis=args.redis_port,
                              bridge=args.bridge_port), args.cache_home)  # fmt: skip
    stack = BenchStack(settings, say=_say)
    result: dict[str, Any] = {"command": " ".join(sys.argv), "quick": args.quick,
                              "machine": machine(), "workloads": {}}  # fmt: skip
    stack.up()
    try:
        result["rss_mib_idle"] = stack.rss_of_services()
        await stack.define(
            workloads.chain(), workloads.hold(), workloads.claim(), deadlines.workflow()
        )
        for name in args.workloads:
            await workload(stack, name, plan, args, result)
        if "ceiling" not in args.skip:
            await raw_ceiling(stack, plan, result)
        if "in-flight" not in args.skip:
            await in_flight(stack, plan, result)
        if "temporal" not in args.skip:
            await temporal(stack, plan, result)
        result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        if not args.keep_stack:
            stack.down()
    return result


def _default_cache() -> Path | None:
    # The repository's usual jar cache, so a benchmark does not download Kafka again.
    cache = Path(".switchyard/cache")
    return cache if cache.exists() else None


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds per phase")
    parser.add_argument("--seconds", type=float, help="closed-loop length (default 60, quick 3)")
    parser.add_argument(
        "--workloads", type=lambda s: s.split(","), default=list(workloads.WORKLOADS)
    )
    parser.add_argument(
        "--skip",
        type=lambda s: s.split(","),
        default=[],
        help="any of: ceiling, temporal, profile, in-flight",
    )
    parser.add_argument("--in-flight", type=int, help="runs held in flight (default 10000)")
    parser.add_argument("--home", type=Path, default=Path("/tmp/switchyard-bench"))
    parser.add_argument(
        "--cache-home",
        type=Path,
        default=Path(".switchyard/cache") if Path(".switchyard/cache").exists() else None,
        help="where the broker's jars are kept (default .switchyard/cache)",
    )
    parser.add_argument("--kafka-port", type=int, default=33092)
    parser.add_argument("--redis-port", type=int, default=33379)
    parser.add_argument("--bridge-port", type=int, default=33080)
    parser.add_argument(
        "--out", type=Path, help="JSON file (default benchmarks/results/<date>.json)"
    )
    parser.add_argument("--keep-stack", action="store_true", help="leave the stack running")
    return parser.parse_args(argv)


def save(result: dict[str, Any], out: Path | None, prefix: str = "") -> Path:
    """Write ``result`` to ``out``, or to ``results/<prefix><date>.json`` and
    ``results/<prefix>latest.json`` when no file is given; returns where it went."""
    text = json.dumps(result, indent=2)
    path = out or RESULTS / f"{prefix}{result['machine']['date'].replace(':', '')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if out is None:
        (RESULTS / f"{prefix}latest.json").write_text(text)
    return path


def cli(argv: list[str] | None = None) -> int:
    args = parse(argv)
    result = asyncio.run(main(args))
    out = save(result, args.out)
    print(table(result))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
