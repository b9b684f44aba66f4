"""What metrics and tracing cost: the ``chain`` workload with telemetry off and on.

    python -m benchmarks.telemetry --seconds 30               # four variants, ~4-5 minutes
    python -m benchmarks.telemetry --seconds 30 --repeats 2   # ABCD DCBA, with the spread
    python -m benchmarks.telemetry --quick --seconds 2 --variants off,trace100  # smoke
    python -m benchmarks.telemetry --seconds 15 --repeats 6 --bracket --variants off,metrics,trace10

Variants: metrics off (``SWITCHYARD_METRICS_ENABLED=false``); metrics on; metrics on
and OpenTelemetry tracing sampled at 10% and at 100% (``OTEL_TRACES_EXPORTER=otlp``
to :mod:`benchmarks.otlp_sink`, a receiver in a process of its own that counts the
spans, ``parentbased_traceidratio``). One stack (``switchyard stack up`` in a fresh
home, on its own ports); between variants Switchyard's processes and the benchmark's
worker are restarted with the variant's environment while Kafka and Redis stay up.
Each variant: the existing harness's closed loop (:func:`benchmarks.run.max_rate`,
runs/s and node runs/s), then an open loop at one fixed rate for every variant (p50/p99
latency); with metrics on, every process's ``/metrics`` is scraped as Prometheus would.
Before the first variant the fresh stack is warmed by a closed loop nobody counts
(``--warm-up``), and before each one Redis' append-only file is rewritten with Redis'
own rewrites turned off, so no variant's window holds a rewrite (the forks inside the
windows are counted and printed). Beside the rates, the CPU (user + system) Switchyard's
processes spent per run: on one shared 2-core machine it moves less with the other
load than runs/s does; the same of Kafka, Redis and the benchmark's worker ("rest":
the worker traces nothing, so a drift of the machine shows there too), and the
engine's mean records per inbox batch (from its ``/metrics``).
Spans come from Switchyard's processes only: the benchmark's worker configures no
tracing and exports nothing.
The machine's speed drifts between windows by more than the costs measured (repeats of
one variant differ by a quarter where a closed loop's two halves agree): beside the Δ of
the variants' means, each window's Δ against the metrics-off windows just before and
after it, and the median of those per variant (the "paired" figure; ``--bracket``
schedules metrics off between every two other windows so that each has both).
Prints a table and writes ``benchmarks/results/telemetry-<timestamp>.json`` (and
``telemetry-latest.json``). Figures, never assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean, median
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from benchmarks import cpu, redis_figures, workloads
from benchmarks.load import closed_loop, open_loop
from benchmarks.otlp_sink import SinkProcess
from benchmarks.run import Plan, closed_figures, machine, max_rate, save
from benchmarks.stack import BenchStack, Ports, bench_settings
from benchmarks.switchyard_target import NodeRunWindow, SwitchyardTarget
from switchyard.cli.stack.full import SERVICE_NAMES
from switchyard.schemas.settings import Settings

WORKLOAD = "chain"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Variant:
    """One telemetry setting, as the environment of every Switchyard process."""

    key: str
    label: str
    metrics: bool
    sampling: float | None = None  # None: tracing off

    def env(self, endpoint: str) -> dict[str, str]:
        env = {
            "SWITCHYARD_METRICS_ENABLED": "true" if self.metrics else "false",
            # Only traces go to the sink; the SDK's other signals stay off in every variant.
            "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
        }  # fmt: skip
        if self.sampling is None:
            return {**env, "OTEL_TRACES_EXPORTER": "none"}
        return {
            **env, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": str(self.sampling),
        }  # fmt: skip


VARIANTS = (
    Variant("off", "metrics off", metrics=False),
    Variant("metrics", "metrics on", metrics=True),
    # On, nothing sampled: what propagation and unsampled spans cost by themselves.
    Variant("trace0", "metrics + tracing 0%", metrics=True, sampling=0.0),
    Variant("trace10", "metrics + tracing 10%", metrics=True, sampling=0.1),
    Variant("trace100", "metrics + tracing 100%", metrics=True, sampling=1.0),
)
BASELINE = "off"
# Issue 15's bounds on the closed-loop rate, relative to metrics off.
TARGETS = {"metrics": 5.0, "trace10": 10.0}


def schedule(variants: list[Variant], repeats: int, bracket: bool = False) -> list[Variant]:
    """ABCD, then DCBA, then ABCD…: a drift over the run falls on every variant alike.

    ``bracket``: the baseline between every two other windows (A B A C A D A, then
    A D A C A B A…), so each window has a baseline window just before and just after
    it, for :func:`paired`."""
    if not bracket:
        order: list[Variant] = []
        for n in range(repeats):
            order += variants if n % 2 == 0 else variants[::-1]
        return order
    base = next((v for v in variants if v.key == BASELINE), None)
    others = [v for v in variants if v.key != BASELINE]
    if base is None or not others:
        raise ValueError(f"a bracketed schedule needs {BASELINE!r} and another variant")
    order = [base]
    for n in range(repeats):
        for variant in others if n % 2 == 0 else others[::-1]:
            order += [variant, base]
    return order


def paired(runs: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per variant, each of its windows' Δ% of runs/s against the baseline windows next
    to it in time (the mean of the one before and the one after, or the one there is).

    The machine's speed drifts between windows far more than within one (a closed
    loop's halves agree where repeats of one variant do not), so a window compared
    with its neighbours carries less of the drift than the means of whole variants."""
    rates = [r["closed"]["runs_per_s"] for r in runs]
    bases = [i for i, r in enumerate(runs) if r["variant"] == BASELINE]
    deltas: dict[str, list[float]] = {}
    for i, run in enumerate(runs):
        if run["variant"] == BASELINE:
            continue
        before = [rates[j] for j in bases if j < i][-1:]
        after = [rates[j] for j in bases if j > i][:1]
        if before or after:
            base = fmean(before + after)
            deltas.setdefault(run["variant"], []).append(round(100 * (rates[i] / base - 1), 1))
    return deltas


class Scraper:
    """Every process's ``/metrics``, every ``every`` seconds, as Prometheus would."""

    def __init__(self, settings: Settings, every: float) -> None:
        self.urls = {
            name: f"http://{settings.ops_host}:{settings.ops_port(name)}/metrics"
            for name in SERVICE_NAMES
            if settings.ops_port(name)
        }
        self.urls["bridge"] = f"http://{settings.bridge_host}:{settings.bridge_port}/metrics"
        self.every = every
        self.scrapes = 0
        self.failed = 0
        self._task: asyncio.Task[None] | None = None

    async def once(self, client: httpx.AsyncClient) -> dict[str, str]:
        texts: dict[str, str] = {}
        for name, url in self.urls.items():
            try:
                response = await client.get(url, timeout=5)
            except httpx.HTTPError:
                self.failed += 1
                continue
            if response.status_code == 200:
                self.scrapes += 1
                texts[name] = response.text
            else:
                self.failed += 1
        return texts

    async def _loop(self) -> None:
        async with httpx.AsyncClient() as client:
            while True:
                await asyncio.sleep(self.every)
                await self.once(client)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def recorded(texts: dict[str, str]) -> dict[str, float]:
    """Per process, the sum of its ``switchyard_*_total`` counters: 0 when nothing records."""
    sums: dict[str, float] = {}
    for name, text in texts.items():
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith("switchyard_") and sample.name.endswith("_total"):
                    total += sample.value
        sums[name] = total
    return sums


# The engine's histograms whose means tell a batch's shape: (figure, metric, scale).
_BATCH_FIGURES = (
    ("records_per_batch", "switchyard_engine_batch_records", 1.0),
    ("batch_ms", "switchyard_engine_batch_seconds", 1000.0),
    ("apply_ms", "switchyard_engine_apply_seconds", 1000.0),
    ("publish_ms", "switchyard_outbox_publish_seconds", 1000.0),
)


def batch_shape(text: str | None) -> dict[str, float]:
    """The engine's batches from its ``/metrics``: how many, and the mean of each of
    :data:`_BATCH_FIGURES` (empty without the text). Smaller batches cost more per run."""
    if not text:
        return {}
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith(("_sum", "_count")):
                sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    shape = {"batches": sums.get("switchyard_engine_batch_records_count", 0.0)}
    for figure, metric, scale in _BATCH_FIGURES:
        count = sums.get(f"{metric}_count", 0.0)
        if count:
            shape[figure] = round(scale * sums.get(f"{metric}_sum", 0.0) / count, 3)
    return shape


async def _runs_in_redis(stack: BenchStack) -> int:
    client = stack.redis()
    try:
        partitions = stack.settings.inbox_partitions
        return await redis_figures.runs_of(client, partitions, f"bench-{WORKLOAD}")
    finally:
        await client.aclose()


async def measure(stack: BenchStack, variant: Variant, env: dict[str, str], plan: Plan,
                  args: argparse.Namespace, rate: float | None) -> dict[str, Any]:  # fmt: skip
    """One variant on running services: closed loop, open loop at ``rate`` (None: a
    fraction of this closed loop's), the processes' counters at the end."""
    worker, _ = stack.start_worker(WORKLOAD, extra_env=env)
    scraper = Scraper(stack.settings, args.scrape_every)
    if variant.metrics:
        scraper.start()
    services = stack.service_pids()
    runs_before, cpu_before = await _runs_in_redis(stack), cpu.snapshot(stack.pids())
    try:
        async with SwitchyardTarget(stack.settings, f"bench-{WORKLOAD}",
                                    observe_steps=False) as target:  # fmt: skip
            nodes = NodeRunWindow(target)
            closed = await max_rate(target, f"{WORKLOAD} [{variant.label}]", plan, hooks=(nodes,))
            offered = rate or max(closed.rate, 1.0) * args.open_fraction
            _say(f"{WORKLOAD} [{variant.label}]: open loop at {offered:.0f} runs/s, "
                 f"{plan.open:.0f} s")  # fmt: skip
            open_before = cpu.snapshot(stack.pids())
            phase = await open_loop(target, rate=offered, seconds=plan.open)
            open_after = cpu.snapshot(stack.pids())
    finally:
        await scraper.stop()
    runs = await _runs_in_redis(stack) - runs_before
    cpu_after = cpu.snapshot(stack.pids())
    async with httpx.AsyncClient() as client:
        texts = await scraper.once(client)
    stack.stop_worker(worker)

    def part(snapshot: dict[str, float], ours: bool) -> dict[str, float]:
        return {name: s for name, s in snapshot.items() if (name in services) == ours}

    return {
        "variant": variant.key, "closed": closed_figures(closed, WORKLOAD, nodes),
        "open": phase.as_dict(), "runs": runs,
        "cpu_ms_per_run": cpu.per_run(part(cpu_before, True), part(cpu_after, True), runs),
        # Kafka, Redis and the benchmark's worker: what the variant costs them.
        "rest_cpu_ms_per_run": cpu.per_run(part(cpu_before, False), part(cpu_after, False),
                                           runs),
        # The open loop alone: every variant at one offered rate, so the batches are
        # alike and the CPU per run is the work's, not the closed loop's dynamics'.
        "open_cpu_ms_per_run": cpu.per_run(part(open_before, True), part(open_after, True),
                                           phase.sent),
        "open_rest_cpu_ms_per_run": cpu.per_run(part(open_before, False),
                                                part(open_after, False), phase.sent),
        "engine_batches": batch_shape(texts.get("engine")),
        "scrapes": scraper.scrapes, "scrapes_failed": scraper.failed,
        "counters_total": recorded(texts),
    }  # fmt: skip


async def _redis_forks(stack: BenchStack) -> int:
    client = stack.redis()
    try:
        return int((await client.info("stats"))["total_forks"])
    finally:
        await client.aclose()


async def compact_aof(stack: BenchStack, within: float = 120.0) -> None:
    """Rewrite Redis' append-only file now and wait for it, with Redis' own rewrites
    off: each run rewrites its state several times, so the file doubles within one
    variant and a rewrite Redis starts on its own (a fork copying a dataset that grows
    variant after variant) would fall inside some windows and not others. Every write
    is still appended and fsynced every second; only when the file is compacted moves."""
    client = stack.redis()
    try:
        await client.config_set("auto-aof-rewrite-percentage", 0)
        with contextlib.suppress(Exception):  # "already in progress": wait for that one
            await client.bgrewriteaof()
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            info = await client.info("persistence")
            if not info.get("aof_rewrite_in_progress") and not info.get("aof_rewrite_scheduled"):
                return
            await asyncio.sleep(0.2)
        _say(f"Redis' AOF rewrite still running after {within:.0f} s; measuring anyway")
    finally:
        await client.aclose()


async def warm_up(stack: BenchStack, env: dict[str, str], seconds: float) -> None:
    """A closed loop nobody counts, once, on the fresh stack: the broker's JIT, the page
    cache and Redis' first allocations warm before the first variant is measured."""
    if seconds <= 0:
        return
    _say(f"warming the stack up for {seconds:.0f} s (not measured)")
    worker, _ = stack.start_worker(WORKLOAD, extra_env=env)
    try:
        async with SwitchyardTarget(stack.settings, f"bench-{WORKLOAD}",
                                    observe_steps=False) as target:  # fmt: skip
            await closed_loop(target, window=200, warmup=0, seconds=seconds)
    finally:
        stack.stop_worker(worker)


async def _durability(stack: BenchStack) -> dict[str, str]:
    client = stack.redis()
    try:
        config = await client.config_get("append*")
    finally:
        await client.aclose()
    return {
        "redis": f"appendonly {config.get('appendonly')}, appendfsync {config.get('appendfsync')}"
        ", the file rewritten between variants (auto-aof-rewrite-percentage 0)",
        "kafka": "one broker (replication 1), default flush (page cache, no fsync per write)",
        "producers": "acks=all, idempotent",
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    plan = Plan(args.quick, args.seconds)
    plan.open = args.open_seconds or (2.0 if args.quick else max(5.0, plan.closed / 3))
    ports = Ports(kafka=args.kafka_port, controller=args.kafka_port + 1, redis=args.redis_port,
                  bridge=args.bridge_port, ops=args.ops_port)  # fmt: skip
    stack = BenchStack(bench_settings(args.home.resolve(), ports, args.cache_home), say=_say)
    # The variants set telemetry; none of the caller's own OTEL_* settings leak in.
    stack.env = {k: v for k, v in stack.env.items() if not k.startswith("OTEL_")}
    order = schedule([v for v in VARIANTS if v.key in args.variants], args.repeats,
                     args.bracket)  # fmt: skip
    result: dict[str, Any] = {
        "command": " ".join(sys.argv), "machine": machine(), "workload": WORKLOAD,
        "plan": {"closed_s": plan.closed, "warmup_s": plan.warmup, "window": plan.window,
                 "open_s": plan.open, "scrape_every_s": args.scrape_every},
        "order": [v.key for v in order], "runs": [],
    }  # fmt: skip
    sink = SinkProcess(args.home.resolve().parent / f"{args.home.name}-otlp-sink.ready",
                       args.sink_port)  # fmt: skip
    sink.start()
    try:
        await _variants(stack, sink, order, plan, args, result)
        result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        try:
            if not args.keep_stack:
                stack.down()
        finally:
            sink.stop()
    result["variants"] = summarise(result["runs"])
    return result


async def _variants(stack: BenchStack, sink: SinkProcess, order: list[Variant], plan: Plan,
                    args: argparse.Namespace, result: dict[str, Any]) -> None:  # fmt: skip
    rate = args.open_rate
    for n, variant in enumerate(order):
        env = variant.env(sink.endpoint)
        before = await sink.counts()
        if n == 0:
            stack.up(env)
            await stack.define(workloads.chain())
            result["durability"] = await _durability(stack)
            await warm_up(stack, env, args.warm_up)
        else:
            _say(f"restarting Switchyard's processes for {variant.label}")
            stack.start_services(env)
        await compact_aof(stack)
        started, forks = time.monotonic(), await _redis_forks(stack)
        entry = await measure(stack, variant, env, plan, args, rate)
        entry["seconds"] = round(time.monotonic() - started, 1)
        entry["redis_forks"] = await _redis_forks(stack) - forks
        rate = entry["open"]["offered_runs_per_s"]  # the first variant's, for all of them
        stack.stop_services()  # shutting down flushes the spans still queued
        after = await sink.counts()
        entry["spans"] = after["spans"] - before["spans"]
        entry["spans_by_service"] = {
            s: n - before["by_service"].get(s, 0) for s, n in after["by_service"].items()
        }
        entry["spans_per_run"] = round(entry["spans"] / max(entry["runs"], 1), 2)
        entry["sink_rejected"] = after["rejected"] - before["rejected"]
        result["runs"].append(entry)
        _say(f"{variant.label}: {entry['closed']['runs_per_s']} runs/s, {entry['spans']} spans")
    result["open_rate"] = rate


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per variant: means over its repeats, the spread, Δ% against metrics off."""
    summary: dict[str, dict[str, Any]] = {}
    for variant in VARIANTS:
        mine = [r for r in runs if r["variant"] == variant.key]
        if not mine:
            continue
        rates = [r["closed"]["runs_per_s"] for r in mine]
        halves = [abs(r["closed"]["first_half_runs_per_s"] - r["closed"]["second_half_runs_per_s"])
                  / max(r["closed"]["runs_per_s"], 1e-9) for r in mine]  # fmt: skip
        summary[variant.key] = {
            "label": variant.label, "repeats": len(mine),
            "runs_per_s": round(fmean(rates), 1),
            "node_runs_per_s": round(fmean(r["closed"]["node_runs_per_s"] for r in mine), 1),
            "runs_per_s_each": rates,
            "spread_pct": round(100 * (max(rates) - min(rates)) / fmean(rates), 1),
            "halves_differ_pct": round(100 * max(halves), 1),
            "p50_ms": _mean(r["open"]["latency_ms"]["p50"] for r in mine),
            "p99_ms": _mean(r["open"]["latency_ms"]["p99"] for r in mine),
            "cpu_ms_per_run": _mean(r["cpu_ms_per_run"]["all"] for r in mine),
            "engine_cpu_ms_per_run": _mean(r["cpu_ms_per_run"].get("engine") for r in mine),
            "rest_cpu_ms_per_run": _mean(r.get("rest_cpu_ms_per_run", {}).get("all")
                                         for r in mine),
            "records_per_batch": _mean(r.get("engine_batches", {}).get("records_per_batch")
                                       for r in mine),
            "open_cpu_ms_per_run": _mean(r.get("open_cpu_ms_per_run", {}).get("all")
                                         for r in mine),
            "open_engine_cpu_ms_per_run": _mean(r.get("open_cpu_ms_per_run", {}).get("engine")
                                                for r in mine),
            "open_rest_cpu_ms_per_run": _mean(r.get("open_rest_cpu_ms_per_run", {}).get("all")
                                              for r in mine),
            "spans": sum(r["spans"] for r in mine),
            "spans_per_run": round(fmean(r["spans_per_run"] for r in mine), 2),
            "counters_total": sum(sum(r["counters_total"].values()) for r in mine),
        }  # fmt: skip
    base = summary.get(BASELINE, {})
    for entry in summary.values():
        entry["delta_pct"] = _delta(entry["runs_per_s"], base.get("runs_per_s"))
        entry["cpu_delta_pct"] = _delta(entry["cpu_ms_per_run"], base.get("cpu_ms_per_run"))
    for key, deltas in paired(runs).items():
        summary[key]["paired_deltas_pct"] = deltas
        summary[key]["paired_delta_pct"] = round(median(deltas), 1)
    return summary


def _delta(value: float | None, base: float | None) -> float | None:
    return round(100 * (value / base - 1), 1) if value is not None and base else None


def _mean(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return round(fmean(present), 2) if present else None


def _cell(value: float | None, spec: str = ".0f", width: int = 8) -> str:
    return format("-" if value is None else format(value, spec), f">{width}")


def table(result: dict[str, Any]) -> str:
    m, p, variants = result["machine"], result["plan"], result["variants"]
    lines = [
        f"Telemetry cost, {result['workload']} workload, {m['date']}, {m['host']}: ONE machine "
        f"with {m['cpus']} cores shared by the load generator, Kafka, Redis, the OTLP sink and "
        f"Switchyard; load average at start {m['loadavg_at_start']}, "
        f"at end {m.get('loadavg_at_end')}",
        f"closed loop {p['window']} in flight for {p['closed_s']:.0f} s; open loop at "
        f"{result['open_rate']:.0f} runs/s for {p['open_s']:.0f} s (latency); "
        f"order {' '.join(result['order'])}",
        "",
        f"{'variant':<23}{'runs/s':>7}{'nodes/s':>8}{'Δ%':>8}{'p50 ms':>7}{'p99 ms':>7}"
        f"{'CPU ms/run':>11}{'CPU Δ%':>8}{'rest':>6}{'rec/b':>6}{'spans':>8}{'/run':>6}",
    ]
    for key, v in variants.items():
        base = key == BASELINE
        lines.append(
            f"{v['label']:<23}{v['runs_per_s']:>7.0f}{v['node_runs_per_s']:>8.0f}"
            f"{_cell(None if base else v.get('delta_pct'), '+.1f')}"
            f"{_cell(v['p50_ms'], width=7)}{_cell(v['p99_ms'], width=7)}"
            f"{_cell(v['cpu_ms_per_run'], '.2f', 11)}"
            f"{_cell(None if base else v.get('cpu_delta_pct'), '+.1f')}"
            f"{_cell(v.get('rest_cpu_ms_per_run'), '.2f', 6)}"
            f"{_cell(v.get('records_per_batch'), '.1f', 6)}"
            f"{v['spans']:>8}{v['spans_per_run']:>6.2f}"
        )
    return "\n".join(lines + _notes(result))


def _notes(result: dict[str, Any]) -> list[str]:
    variants = result["variants"]
    repeats = max((v["repeats"] for v in variants.values()), default=1)
    spread = max((v["spread_pct"] for v in variants.values()), default=0.0)
    halves = max((v["halves_differ_pct"] for v in variants.values()), default=0.0)
    noise = (f"repeats differ by up to {spread:.1f}% of a variant's mean runs/s; "
             if repeats > 1 else "one run per variant (no repeats); ")  # fmt: skip
    lines = [
        "",
        "Δ: runs/s vs metrics off (closed loop); CPU ms/run: user+system CPU of all "
        "Switchyard processes (engine's jq sandboxes included) per run started, warm-up to "
        "drained open loop; rest: the same of Kafka, Redis and the benchmark's worker; "
        "rec/b: the engine's mean records per inbox batch (from its /metrics, metrics on)",
        f"noise: {noise}a closed loop's two halves differ by up to {halves:.1f}%",
        "Redis forks (AOF rewrites) inside the measured variants: "
        f"{sum(r.get('redis_forks', 0) for r in result['runs'])} (a rewrite runs before each)",
        "metrics recorded (sum of switchyard_*_total at the end, all processes): "
        + ", ".join(f"{k} {v['counters_total']:.0f}" for k, v in variants.items()),
    ]
    d = result.get("durability")
    if d:
        lines.append(f"durability: Redis {d['redis']}; Kafka {d['kafka']}; {d['producers']}")
    if any(v.get("open_cpu_ms_per_run") is not None for v in variants.values()):
        lines.append("CPU ms per run in the open loop alone (one offered rate for all): "
                     "Switchyard / its engine / rest")  # fmt: skip
        for v in variants.values():
            lines.append(f"  {v['label']:<23}{_cell(v.get('open_cpu_ms_per_run'), '.3f', 6)} /"
                         f"{_cell(v.get('open_engine_cpu_ms_per_run'), '.3f', 6)} /"
                         f"{_cell(v.get('open_rest_cpu_ms_per_run'), '.3f', 6)}")  # fmt: skip
    if any("paired_delta_pct" in v for v in variants.values()):
        lines.append("paired Δ: each window against the metrics-off windows just before and "
                     "after it; the median over a variant's windows (and their range)")  # fmt: skip
        for v in variants.values():
            deltas = v.get("paired_deltas_pct")
            if deltas:
                low, high = min(deltas), max(deltas)
                lines.append(f"  {v['label']:<23}{v['paired_delta_pct']:+6.1f}%  over "
                             f"{len(deltas)} windows, {low:+.1f}% to {high:+.1f}%")  # fmt: skip
    for key, bound in TARGETS.items():
        entry = variants.get(key)
        if entry and entry.get("delta_pct") is not None:
            # The paired median when there is one: it carries less of the drift.
            figure = entry.get("paired_delta_pct", entry["delta_pct"])
            which = "paired median" if "paired_delta_pct" in entry else "means"
            met = "yes" if figure >= -bound else "no"
            lines.append(f"{entry['label']}: {figure:+.1f}% runs/s vs off ({which}; issue 15, "
                         f"at most {bound:.0f}% slower: {met})")  # fmt: skip
    return lines


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.telemetry", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add = parser.add_argument
    add("--seconds", type=float, help="closed-loop length per variant (default 60, quick 3)")
    add("--quick", action="store_true", help="1 s warm-up, 2 s open loop (the smoke test)")
    add("--repeats", type=int, default=1, help="runs of every variant, order reversed each time")
    add("--bracket", action="store_true",
        help="metrics off between every two others (A B A C A, then A C A B A…)")  # fmt: skip
    add("--variants", type=lambda s: s.split(","), default=[v.key for v in VARIANTS],
        help="any of: " + ", ".join(v.key for v in VARIANTS))  # fmt: skip
    add(
        "--warm-up",
        type=float,
        help="seconds of an unmeasured closed loop on the fresh "
        "stack before the first variant (default 20, quick 0)",
    )
    add("--open-rate", type=float, help="open-loop runs/s (default: half the first max)")
    add("--open-fraction", type=float, default=0.5)
    add("--open-seconds", type=float, help="open-loop length (default a third of --seconds)")
    add("--scrape-every", type=float, default=10.0, help="seconds between /metrics scrapes")
    add("--home", type=Path, default=Path("/tmp/switchyard-bench-telemetry"))
    cache = Path(".switchyard/cache")  # the repository's jar cache: no Kafka download
    add("--cache-home", type=Path, default=cache if cache.exists() else None)
    add("--kafka-port", type=int, default=24092)
    add("--redis-port", type=int, default=24379)
    add("--bridge-port", type=int, default=24080)
    add("--ops-port", type=int, default=24101, help="the engine's; the next four for the others")
    add("--sink-port", type=int, default=0, help="the OTLP sink's (default: any free port)")
    add("--out", type=Path, help="JSON file (default benchmarks/results/telemetry-<date>.json)")
    add("--keep-stack", action="store_true", help="leave the stack running")
    args = parser.parse_args(argv)
    if args.bracket and (BASELINE not in args.variants or len(set(args.variants)) < 2):
        parser.error(f"--bracket needs {BASELINE} and another variant in --variants")
    if args.warm_up is None:
        args.warm_up = 0.0 if args.quick else 20.0
    return args


def cli(argv: list[str] | None = None) -> int:
    args = parse(argv)
    result = asyncio.run(main(args))
    out = save(result, args.out, "telemetry-")
    print(table(result))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
