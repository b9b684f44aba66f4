"""The one load generator every target is driven by: Switchyard, raw Kafka, Temporal.

A target fires runs (:meth:`Target.trigger`) and reports each finished one on its
``completed`` queue with the two timestamps that bound it, taken by the target from
the messages themselves (Kafka message timestamps), never from sleeps here.
Closed loop: a fixed number of runs in flight, a new one for each that completes, so
the backlog can't grow; the rate is what completes. Open loop: runs fired on a fixed
schedule whatever happens, so queueing shows up as latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Completion:
    """One finished run: trigger and completion times (ms since the epoch)."""

    run_id: str
    triggered_ms: float
    completed_ms: float
    # Engine overhead of the measured step (completed → next request published), ms.
    transition_ms: float | None = None
    # Trigger → first worker request published (trigger and CONDITION applied), ms.
    first_request_ms: float | None = None
    # Node-run completions observed for this run (None: the target can't see them).
    node_runs: int | None = None

    @property
    def latency_ms(self) -> float:
        return self.completed_ms - self.triggered_ms


class Target(Protocol):
    name: str
    completed: asyncio.Queue[Completion]

    async def trigger(self) -> None: ...


class WindowHook(Protocol):
    """Something measured over a closed loop's window: started when the window opens
    (after the warm-up), stopped when it closes, before the loop drains."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def distribution(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(values, 0.50),
        "p90": percentile(values, 0.90),
        "p99": percentile(values, 0.99),
        "max": max(values) if values else None,
        "n": float(len(values)),
    }


@dataclass
class ClosedLoop:
    """Result of a closed-loop phase."""

    window: int
    seconds: float
    completed: int
    per_second: list[int] = field(default_factory=list)
    # Node runs observed per completed run → how many runs had that many (the shape check).
    node_runs_per_run: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        half = len(self.per_second) // 2
        first, second = self.per_second[:half], self.per_second[half:]
        return {
            "window": self.window, "seconds": self.seconds, "completed": self.completed,
            "runs_per_s": round(self.rate, 1),
            # Backlog check: in a closed loop it is the window; the two halves' rates
            # show the rate held (no slow drift from a growing queue somewhere else).
            "first_half_runs_per_s": round(sum(first) / len(first), 1) if first else None,
            "second_half_runs_per_s": round(sum(second) / len(second), 1) if second else None,
            "node_runs_per_run_observed": {str(k): v for k, v in
                                           sorted(self.node_runs_per_run.items())},
            "per_second": self.per_second,  # runs completed in each second of the window
        }  # fmt: skip


async def _fire(target: Target, tasks: set[asyncio.Task[None]]) -> None:
    task = asyncio.create_task(target.trigger())
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def drain(target: Target, outstanding: int, within: float) -> int:
    """Wait for ``outstanding`` completions (at most ``within`` s); returns how many are left."""
    deadline = time.monotonic() + within
    while outstanding > 0:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            await asyncio.wait_for(target.completed.get(), left)
        except TimeoutError:
            break
        outstanding -= 1
    return outstanding


async def _window(hooks: Sequence[WindowHook], measure_from: float, measure_to: float) -> None:
    await asyncio.sleep(max(0.0, measure_from - time.monotonic()))
    for hook in hooks:
        hook.start()
    await asyncio.sleep(max(0.0, measure_to - time.monotonic()))
    for hook in hooks:
        hook.stop()


async def closed_loop(target: Target, *, window: int, warmup: float, seconds: float,
                      hooks: Sequence[WindowHook] = ()) -> ClosedLoop:  # fmt: skip
    tasks: set[asyncio.Task[None]] = set()
    for _ in range(window):
        await _fire(target, tasks)
    started = time.monotonic()
    measure_from = started + warmup
    measure_to = measure_from + seconds
    timing = asyncio.create_task(_window(hooks, measure_from, measure_to))
    result = ClosedLoop(window=window, seconds=seconds, completed=0)
    buckets = [0] * max(1, int(seconds + 0.999))
    while True:
        now = time.monotonic()
        if now >= measure_to:
            break
        try:
            done = await asyncio.wait_for(target.completed.get(), max(0.01, measure_to - now))
        except TimeoutError:
            continue
        now = time.monotonic()
        if measure_from <= now < measure_to:
            result.completed += 1
            buckets[min(len(buckets) - 1, int(now - measure_from))] += 1
            if done.node_runs is not None:
                shapes = result.node_runs_per_run
                shapes[done.node_runs] = shapes.get(done.node_runs, 0) + 1
        await _fire(target, tasks)
    result.per_second = buckets
    await timing
    await asyncio.gather(*tasks)
    await drain(target, window, within=60)
    return result


@dataclass
class OpenLoop:
    """Result of an open-loop phase at a fixed offered rate."""

    offered_per_s: float
    seconds: float
    sent: int
    completions: list[Completion]
    unfinished: int
    late_sends: int  # sends the generator could not fire on schedule (> 5 ms late)

    def as_dict(self) -> dict[str, Any]:
        latencies = [c.latency_ms for c in self.completions]
        transitions = [c.transition_ms for c in self.completions if c.transition_ms is not None]
        firsts = [c.first_request_ms for c in self.completions if c.first_request_ms is not None]
        return {
            "offered_runs_per_s": round(self.offered_per_s, 1),
            "seconds": self.seconds,
            "sent": self.sent,
            "completed": len(self.completions),
            "unfinished": self.unfinished,
            "late_sends": self.late_sends,
            "latency_ms": distribution(latencies),
            "transition_ms": distribution(transitions),
            "first_request_ms": distribution(firsts),
        }


async def open_loop(target: Target, *, rate: float, seconds: float, drain_within: float = 30.0
                    ) -> OpenLoop:  # fmt: skip
    tasks: set[asyncio.Task[None]] = set()
    total = max(1, int(rate * seconds))
    completions: list[Completion] = []
    all_done = asyncio.Event()

    async def collect() -> None:
        while True:
            completions.append(await target.completed.get())
            if len(completions) >= total:
                all_done.set()

    collector = asyncio.create_task(collect())
    started = time.monotonic()
    late = 0
    for i in range(total):
        due = started + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            late += 1
        await _fire(target, tasks)
    await asyncio.gather(*tasks)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_done.wait(), drain_within)
    collector.cancel()
    return OpenLoop(
        offered_per_s=rate, seconds=seconds, sent=total, completions=list(completions),
        unfinished=total - len(completions), late_sends=late,
    )  # fmt: skip
