"""What Switchyard's figures are set against, driven by the same load generator: the
raw-Kafka ceiling (:mod:`benchmarks.ceiling`) and Temporal's dev server, tuned
(:mod:`benchmarks.temporal_peer`). Each with the CPU of all its processes per run."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING, Any

from benchmarks import ceiling
from benchmarks.cpu import CpuMeter
from benchmarks.load import closed_loop, open_loop
from benchmarks.stack import BenchStack

if TYPE_CHECKING:
    from benchmarks.run import Plan


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
    procs = {
        role: stack.spawn("benchmarks.ceiling", role, "--bootstrap", bootstrap,
                          "--shape", ceiling.shape_argument(shape))
        for role in ("relay", "worker")
    }  # fmt: skip
    pids = {"kafka": stack.pid("kafka"), "load generator": os.getpid(),
            **{f"raw {role}": proc.pid for role, proc in procs.items()}}  # fmt: skip
    meter = CpuMeter(lambda: pids)
    try:
        async with ceiling.RawTarget(bootstrap, shape) as target:
            _say(f"raw kafka ceiling: closed loop, {plan.window} in flight, {plan.closed:.0f} s")
            await closed_loop(target, window=50, warmup=0, seconds=plan.warmup)
            closed = await closed_loop(target, window=plan.window, warmup=plan.warmup,
                                       seconds=plan.closed, hooks=(meter,))  # fmt: skip
            phase = await open_loop(target, rate=max(closed.rate, 1) * 0.5, seconds=plan.open)
        result["raw_kafka"] = {
            "shape": shape.__dict__, "open_50": phase.as_dict(),
            "closed": {**closed.as_dict(), "cpu_ms_per_run": meter.per_run(closed.completed)},
        }  # fmt: skip
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(20)


async def temporal(stack: BenchStack, plan: Plan, result: dict[str, Any],
                   seq_steps: int | None) -> None:  # fmt: skip
    """The ``chain`` shape on the tuned dev server (closed loop, open loop at 50%), then
    ``seq`` (when ``seq_steps``), one workflow at a time."""
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
    pids = {"temporal server": server.process.pid if server.process else None,
            "temporal worker": worker.pid, "load generator": os.getpid()}  # fmt: skip
    meter = CpuMeter(lambda: pids)
    entry: dict[str, Any] = {
        "server_settings": {
            "dynamic_config": server.dynamic,
            "history_shards": 1,
            "persistence": "memory",
        }
    }
    result["temporal"] = entry
    try:
        while not ready.exists():
            if worker.poll() is not None:
                raise RuntimeError("temporal worker exited")
            await asyncio.sleep(0.1)
        async with temporal_peer.TemporalTarget(server.address) as target:
            _say(f"temporal: closed loop, {plan.window} in flight, {plan.peer_closed:.0f} s")
            await closed_loop(target, window=50, warmup=0, seconds=plan.warmup)
            closed = await closed_loop(target, window=plan.window, warmup=plan.warmup,
                                       seconds=plan.peer_closed, hooks=(meter,))  # fmt: skip
            rate = max(closed.rate, 1) * 0.5
            _say(f"temporal: open loop at {rate:.0f} runs/s (50% of its max)")
            phase = await open_loop(target, rate=rate, seconds=plan.open)
        entry["closed"] = {**closed.as_dict(), "cpu_ms_per_run": meter.per_run(closed.completed)}
        entry["open_50"] = phase.as_dict()
        entry["server_rss_mib"] = server.rss_mib()
        if seq_steps:
            _say(f"temporal: seq, {seq_steps} activities, one workflow at a time")
            meter.start()
            entry["seq"] = await temporal_peer.seq_figures(server.address, seq_steps, plan.seq)
            meter.stop()
            entry["seq"]["cpu_ms_per_run"] = meter.per_run(entry["seq"]["runs"])
    except RuntimeError as error:
        entry["error"] = str(error)
    finally:
        worker.terminate()
        worker.wait(20)
        server.stop()
