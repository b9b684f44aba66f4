"""Switchyard's benchmarks in one command: throughput, latency and memory, against the
raw Kafka ceiling and against Temporal.

    python -m benchmarks.run                 # everything, both profiles, ~20 minutes
    python -m benchmarks.run --quick         # seconds per phase (the smoke test's mode)
    python -m benchmarks.run --workloads chain,seq --skip temporal,profile --profiles default

Starts its own stack (``switchyard stack up`` in a fresh home, on its own ports),
the benchmark workers, the raw-Kafka pipeline and Temporal's dev server (tuned); once
per durability profile (``SWITCHYARD_DURABILITY``: ``default``, ``durable``), each on a
fresh stack. Node runs/s are counted from the run events, CPU per run over every
process from ``/proc``. Prints a table and writes
``benchmarks/results/<timestamp>.json`` (and ``latest.json``).
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
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from statistics import fmean
from typing import Any

from benchmarks import deadlines, durability, peers, profile, redis_figures, seq, workloads
from benchmarks.cpu import CpuMeter
from benchmarks.load import ClosedLoop, WindowHook, closed_loop, open_loop
from benchmarks.report import headline, table
from benchmarks.stack import BenchStack, Durability, Ports, bench_settings
from benchmarks.switchyard_target import NodeRunWindow, SwitchyardTarget
from switchyard.cli.stack.profile import StackProfile

RESULTS = Path(__file__).parent / "results"
FRACTIONS = (0.25, 0.50, 0.80)
PROFILE_PORT_SHIFT = 200  # the n-th profile's stack: every port + n * this
CLUSTER_OPS_SHIFT = 100
PROFILES: tuple[Durability, ...] = ("default", "durable")  # the stack's SWITCHYARD_DURABILITY


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
        self.seq = 2.0 if quick else 20.0


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


async def max_rate(target: SwitchyardTarget, name: str, plan: Plan,
                   hooks: Sequence[WindowHook] = ()) -> ClosedLoop:  # fmt: skip
    """Caches warmed, then the closed loop with ``plan.window`` in flight: the maximum
    rate; ``hooks`` measure its window."""
    await closed_loop(target, window=50, warmup=0, seconds=plan.warmup)  # warm caches
    _say(f"{name}: closed loop, {plan.window} in flight, {plan.closed:.0f} s")
    return await closed_loop(target, window=plan.window, warmup=plan.warmup,
                             seconds=plan.closed, hooks=hooks)  # fmt: skip


def closed_figures(closed: ClosedLoop, name: str, nodes: NodeRunWindow | None = None,
                   meter: CpuMeter | None = None) -> dict[str, Any]:  # fmt: skip
    """The closed loop's JSON: node runs/s as observed in the window (``nodes``) beside
    what the workflow's shape implies, and CPU ms per run over ``meter``'s processes."""
    figures = closed.as_dict()
    figures["node_runs_per_s_expected"] = round(closed.rate * workloads.NODE_RUNS[name], 1)
    if nodes is not None:
        figures["node_runs_in_window"] = nodes.count
        figures["node_runs_per_s"] = round(nodes.per_second, 1)
    if meter is not None:
        figures["cpu_ms_per_run"] = meter.per_run(closed.completed)
    return figures


def all_pids(stack: BenchStack) -> dict[str, int | None]:
    """Every process of a Switchyard measurement, the load generator (this one) included."""
    return {**stack.pids(), "load generator": os.getpid()}


async def _closed(stack: BenchStack, name: str, plan: Plan, args: argparse.Namespace,
                  result: dict[str, Any], entry: dict[str, Any]) -> float:  # fmt: skip
    """The closed loop (and the engine's profile, for chain); returns the maximum rate."""
    async with SwitchyardTarget(stack.settings, f"bench-{name}", observe_steps=False) as target:
        nodes, meter = NodeRunWindow(target), CpuMeter(lambda: all_pids(stack))
        closed = await max_rate(target, name, plan, hooks=(nodes, meter))
        entry["closed"] = closed_figures(closed, name, nodes, meter)
        entry["closed"]["node_runs_checked_in_store"] = await nodes.checked_in_store()
        entry["rss_mib_under_load"] = {
            p: stack.rss_mib(p) for p in ("engine", "executor", "timers", "bridge")
        }
        if name == "chain":
            result["sizes"] = {t: round(fmean(s)) for t, s in target.sizes.items() if s}
        if name == "chain" and "profile" not in args.skip:
            entry["profile"] = await _profile(stack, target, plan)
    return max(closed.rate, 1.0)


async def _open(stack: BenchStack, name: str, plan: Plan, maximum: float,
                result: dict[str, Any], entry: dict[str, Any]) -> None:  # fmt: skip
    entry["open"] = []
    flow = f"bench-{name}"
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
            entry["open"].append({"fraction_of_max": fraction, **phase.as_dict()})
            if name == "chain" and fraction == 0.25:
                result["sizes"].update({t: round(fmean(s)) for t, s in target.sizes.items() if s})


async def workload(stack: BenchStack, name: str, plan: Plan, args: argparse.Namespace,
                   result: dict[str, Any]) -> None:  # fmt: skip
    if name == "seq":
        await seq_workload(stack, plan, result)
        return
    worker, ready = stack.start_worker(name)
    if name == "webhook":
        await stack.define(workloads.webhook(ready["url"]))
    entry: dict[str, Any] = {"node_runs_per_run": workloads.NODE_RUNS[name]}
    redis_before = await redis_figures.used(stack)
    redis_stats = await redis_figures.stats(stack)
    maximum = await _closed(stack, name, plan, args, result, entry)
    await _open(stack, name, plan, maximum, result, entry)
    if name == "chain":
        # Redis growth over every chain run completed so far (warm-up runs included).
        await asyncio.sleep(0.5)
        entry["redis_bytes_per_completed_run"] = await redis_figures.per_run(stack, redis_before)
        entry["redis_work_per_run"] = await redis_figures.work(stack, redis_stats)
    stack.stop_worker(worker)
    result["workloads"][name] = entry


async def seq_workload(stack: BenchStack, plan: Plan, result: dict[str, Any]) -> None:
    """``seq``: one run at a time through N KAFKA steps, with the CPU of all processes."""
    worker, _ = stack.start_worker("seq")
    meter = CpuMeter(lambda: all_pids(stack))
    _say(f"seq: {workloads.SEQ_STEPS} KAFKA steps, one run at a time, {plan.seq:.0f} s")
    meter.start()
    figures = await seq.measure(stack.settings, workloads.SEQ_STEPS, plan.seq)
    meter.stop()
    figures["cpu_ms_per_run"] = meter.per_run(figures["runs"])
    stack.stop_worker(worker)
    result["workloads"]["seq"] = figures


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
    client, partitions = stack.redis(), stack.settings.inbox_partitions
    before_rss = stack.rss_mib("engine")
    before = int((await client.info("memory"))["used_memory"])
    async with SwitchyardTarget(stack.settings, "bench-hold", observe_steps=False) as target:
        started = time.monotonic()
        await target.trigger_many(plan.in_flight, "bench-hold")
        while await redis_figures.runs_of(client, partitions, "bench-hold") < plan.in_flight:
            if time.monotonic() - started > 300:
                break
            await asyncio.sleep(0.2)
        applied = time.monotonic() - started
    await asyncio.sleep(1.0)
    held = await redis_figures.runs_of(client, partitions, "bench-hold")
    used = int((await client.info("memory"))["used_memory"])
    pending = await redis_figures.timers_pending(client, partitions)
    _say(f"in flight: {pending} timers pending; deadline runs at 20/s")
    lateness = await deadlines.probe(stack.settings, rate=20, seconds=min(10.0, plan.open))
    await client.aclose()
    result["in_flight"] = {
        "runs": held, "seconds_to_apply": round(applied, 1),
        "engine_rss_mib_before": before_rss, "engine_rss_mib": stack.rss_mib("engine"),
        "redis_bytes_per_waiting_run": round((used - before) / max(held, 1)),
        "timers_pending": pending, "timer_lateness": lateness,
    }  # fmt: skip


async def one_profile(stack: BenchStack, plan: Plan, args: argparse.Namespace,
                      section: dict[str, Any], *, first: bool) -> None:  # fmt: skip
    """Every selected workload and the raw ceiling on a fresh stack of one durability
    profile; the first profile also measures in-flight runs and the peer (which keeps
    its state in memory whatever the profile)."""
    stack.up()
    try:
        section["durability"] = await durability.settings_of(stack)
        _say("durability: " + durability.summary(section["durability"]))
        section["rss_mib_idle"] = stack.rss_of_services()
        await stack.define(workloads.chain(), workloads.hold(), workloads.claim(),
                           workloads.seq(), deadlines.workflow())  # fmt: skip
        for name in args.workloads:
            await workload(stack, name, plan, args, section)
        if "ceiling" not in args.skip:
            await peers.raw_ceiling(stack, plan, section)
        if first and "in-flight" not in args.skip:
            await in_flight(stack, plan, section)
        if first and "temporal" not in args.skip:
            steps = workloads.SEQ_STEPS if "seq" in args.workloads else None
            await peers.temporal(stack, plan, section, steps)
    finally:
        if not args.keep_stack:
            stack.down()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    """The first profile's figures at the top of the result, the others' under
    ``profiles``, each on a stack of its own (same ports, fresh data)."""
    plan = Plan(args.quick, args.seconds)
    plan.in_flight = args.in_flight or plan.in_flight
    result: dict[str, Any] = {"command": " ".join(sys.argv), "quick": args.quick,
                              "machine": machine(), "workloads": {}, "profiles": {}}  # fmt: skip
    for index, name in enumerate(args.profiles):
        # Each profile's stack on ports of its own: clients of the stack just stopped still
        # retry its ports, and a retry whose source port is the port itself holds it.
        shift = PROFILE_PORT_SHIFT * index
        # A cluster's controllers take kafka port + 11..13: the ops ports move clear.
        ops = args.ops_port + shift + (CLUSTER_OPS_SHIFT if args.cluster else 0)
        ports = Ports(kafka=args.kafka_port + shift, controller=args.kafka_port + 1 + shift,
                      redis=args.redis_port + shift, bridge=args.bridge_port + shift,
                      ops=ops)  # fmt: skip
        shape = StackProfile(cluster=args.cluster, engines=args.engines)
        settings = bench_settings(args.home.resolve(), ports, args.cache_home, durability=name,
                                  shape=shape)  # fmt: skip
        section = result if index == 0 else result["profiles"].setdefault(name, {"workloads": {}})
        section["shape"] = {"cluster": shape.cluster, "engines": shape.engines}
        _say(f"durability profile {name!r}: a fresh stack ({_shape_text(shape)})")
        stack = BenchStack(settings, say=_say, shape=shape)
        await one_profile(stack, plan, args, section, first=index == 0)
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    # The figures every profile is compared on, one line each (the table's last block).
    result["headline"] = {
        result["durability"]["profile"]: headline(result),
        **{name: headline(section) for name, section in result["profiles"].items()},
    }
    return result


def _workloads(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or any(name not in workloads.WORKLOADS for name in names):
        raise argparse.ArgumentTypeError(
            f"must be a comma-separated list of {', '.join(workloads.WORKLOADS)} (got {text!r})"
        )
    return names


def _profiles(text: str) -> list[Durability]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or any(name not in PROFILES for name in names):
        raise argparse.ArgumentTypeError(
            f"must be a comma-separated list of {', '.join(PROFILES)} (got {text!r})"
        )
    return [profile for profile in PROFILES if profile in names]


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
        "--workloads",
        type=_workloads,
        default=list(workloads.WORKLOADS),
        help=f"any of {', '.join(workloads.WORKLOADS)} (default: all)",
    )
    parser.add_argument(
        "--skip",
        type=lambda s: s.split(","),
        default=[],
        help="any of: ceiling, temporal, profile, in-flight",
    )
    parser.add_argument(
        "--profiles",
        type=_profiles,
        default=list(PROFILES),
        help="durability profiles to measure, each on its own stack (default default,durable)",
    )
    parser.add_argument("--in-flight", type=int, help="runs held in flight (default 10000)")
    parser.add_argument("--home", type=Path, default=Path("/tmp/switchyard-bench"))
    parser.add_argument(
        "--cache-home",
        type=Path,
        default=Path(".switchyard/cache") if Path(".switchyard/cache").exists() else None,
        help="where the broker's jars are kept (default .switchyard/cache)",
    )
    parser.add_argument("--kafka-port", type=int, default=24092)
    parser.add_argument("--redis-port", type=int, default=24379)
    parser.add_argument("--bridge-port", type=int, default=24080)
    parser.add_argument(
        "--ops-port", type=int, default=24101, help="the engine's /metrics; the next four too"
    )
    parser.add_argument(
        "--out", type=Path, help="JSON file (default benchmarks/results/<date>.json)"
    )
    parser.add_argument("--keep-stack", action="store_true", help="leave the stack running")
    parser.add_argument(
        "--cluster", action="store_true",
        help="on `stack up --cluster`: three brokers, a Redis Cluster of three masters with "
        "a replica each, WAIT for one replica before each commit",
    )  # fmt: skip
    parser.add_argument(
        "--engines", type=int, default=1, help="engine processes in one group (default 1)"
    )
    return parser.parse_args(argv)


def _shape_text(shape: StackProfile) -> str:
    where = "cluster" if shape.cluster else "single node"
    return f"{where}, {shape.engines} engine{'s' if shape.engines > 1 else ''}"


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
