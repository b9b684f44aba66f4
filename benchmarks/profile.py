"""A py-spy profile of a running process, summarised as its top costs.

py-spy samples the engine from outside (no code change, no slowdown of the sampled
process beyond the pauses it takes). Collapsed stacks are folded into self time (the
frame on top) and total time (anywhere on the stack) per function.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """Start sampling ``pid`` for ``seconds`` in the background (None: no py-spy)."""
    binary = py_spy()
    if binary is None:
        return None
    return subprocess.Popen(
        [binary, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
         "--format", "raw", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


# Frames every sample has (the event loop, the entry point): left out of "total".
_PLUMBING = ("asyncio/", "runpy", "selectors.py", "cli/", "threading.py", "mode/", "retry_forever")


def _short(frame: str) -> str:
    # "handle (switchyard/engine/processor.py:93)" → "handle (engine/processor.py)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def summarise(collapsed: Path, top: int = 15) -> dict[str, Any]:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if f]
        frames = [f for f in frames if not f.startswith("<module>") and "process " not in f]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            if not any(part in frame for part in _PLUMBING):
                total[frame] += count

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": f, "percent": round(100 * n / samples, 1)}
                for f, n in counter.most_common(top)]  # fmt: skip

    return {"samples": samples, "self": share(own), "total": share(total)}
