"""The webhook path's tail, measured longer than ``benchmarks.run --quick`` does.

    python -m benchmarks.webhook_tail [--closed 10] [--open 20] [--fractions 0.5]

Starts the benchmark's stack on its own ports (below the ephemeral range: an ops port
there can be taken by an outgoing connection), the ``webhook`` workload's HTTP
receiver, finds the maximum rate with a closed loop,
then runs an open loop at each fraction of it and prints p50/p90/p99/max of
trigger→completed. ``--rate R`` skips the closed loop and offers R runs/s. Figures,
never assertions. Extra ``SWITCHYARD_*`` variables in the environment reach the
executor (e.g. ``SWITCHYARD_EXECUTOR_CONCURRENCY``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks import workloads
from benchmarks.load import closed_loop, open_loop
from benchmarks.stack import BenchStack, Ports, bench_settings
from benchmarks.switchyard_target import SwitchyardTarget


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def measure(stack: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    worker, ready = stack.start_worker("webhook")
    await stack.define(workloads.webhook(ready["url"]))
    result: dict[str, Any] = {"open": []}
    async with SwitchyardTarget(stack.settings, "bench-webhook", observe_steps=False) as target:
        await closed_loop(target, window=50, warmup=0, seconds=2.0)  # warm caches
        if args.rate is None:
            closed = await closed_loop(target, window=200, warmup=2.0, seconds=args.closed)
            result["closed_runs_per_s"] = round(closed.rate, 1)
            _say(f"closed loop: {closed.rate:.0f} runs/s")
        maximum = args.rate or result["closed_runs_per_s"]
        for fraction in args.fractions:
            rate = maximum * fraction if args.rate is None else maximum
            phase = (await open_loop(target, rate=rate, seconds=args.open)).as_dict()
            result["open"].append({"fraction": fraction, **phase})
            latency = phase["latency_ms"]
            _say(f"open loop at {rate:.0f} runs/s: {json.dumps(latency)}")
    stack.stop_worker(worker)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--closed", type=float, default=10.0)
    parser.add_argument("--open", type=float, default=20.0)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--fractions", type=lambda s: [float(f) for f in s.split(",")],
                        default=[0.5])  # fmt: skip
    parser.add_argument("--home", type=Path, default=Path("/tmp/switchyard-webhook-tail"))
    parser.add_argument("--kafka-port", type=int, default=23092)
    parser.add_argument("--redis-port", type=int, default=23379)
    parser.add_argument("--bridge-port", type=int, default=23080)
    args = parser.parse_args()
    port = args.kafka_port
    ports = Ports(kafka=port, controller=port + 1, redis=args.redis_port,
                  bridge=args.bridge_port, ops=port + 9)  # fmt: skip
    cache = Path(".switchyard/cache")
    settings = bench_settings(args.home.resolve(), ports, cache if cache.exists() else None)
    stack = BenchStack(settings, say=_say)
    try:
        stack.up()
        print(json.dumps(asyncio.run(measure(stack, args)), indent=2))
    finally:
        stack.down()


if __name__ == "__main__":
    main()
