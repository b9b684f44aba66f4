"""CPU time of the benchmark's processes, from ``/proc``, over a measured window.

Every process that works for a run is counted: Switchyard's services, the benchmark's
workers, Kafka, Redis, the load generator itself, the raw-Kafka relay and worker, the
peer's server and worker. A process's figure is its user + system time plus that of
its children (those already reaped and those alive now: the engine's jq sandboxes),
so a short-lived helper process is not lost. Divided by the runs completed in the
window, it is a cost figure that other load on a shared machine moves far less than
the rate.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")

Pids = Callable[[], Mapping[str, int | None]]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid``, its reaped children and its live descendants."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # gone
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    # Fields after the command: utime, stime, cutime, cstime are the 12th to 15th.
    own = sum(int(value) for value in fields[11:15]) / _TICK
    return own + sum(cpu_seconds(int(child)) for child in children)


def snapshot(pids: Mapping[str, int | None]) -> dict[str, float]:
    """CPU seconds so far of each named process (absent pids left out)."""
    return {name: cpu_seconds(pid) for name, pid in pids.items() if pid}


def per_run(before: Mapping[str, float], after: Mapping[str, float], runs: int
            ) -> dict[str, float]:  # fmt: skip
    """CPU ms per run by process, and ``all``, their sum. A process that was not there
    at the start (or is gone at the end) counts only what was seen of it."""
    used = {name: max(0.0, after[name] - before.get(name, 0.0)) for name in after}
    figures = {name: round(1000 * seconds / max(runs, 1), 3) for name, seconds in used.items()}
    figures["all"] = round(1000 * sum(used.values()) / max(runs, 1), 3)
    return figures


class CpuMeter:
    """CPU of ``pids()`` between :meth:`start` and :meth:`stop`, as a window hook of the
    load generator (:func:`benchmarks.load.closed_loop`): the process list is read at
    each end, so a process that is restarted in between is still counted."""

    def __init__(self, pids: Pids) -> None:
        self.pids = pids
        self.before: dict[str, float] = {}
        self.after: dict[str, float] = {}

    def start(self) -> None:
        self.before = snapshot(self.pids())
        self.after = {}

    def stop(self) -> None:
        self.after = snapshot(self.pids())

    def per_run(self, runs: int) -> dict[str, float]:
        return per_run(self.before, self.after, runs)
