"""What the API commands print: tables for people, the API's JSON for scripts.

``--output json`` prints the API's response body unchanged (one JSON document), or for
the commands that follow a run (``watch``, ``logs --follow``) one JSON object per line.
Progress while waiting goes to stderr, and only when stderr is a terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return str(value)


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """Columns padded to their widest cell; ``-`` for a missing value."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]
    lines = [header, *cells]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def short_time(stamp: Any) -> str:
    """``2026-12-02T01:02:03.456Z`` as ``2026-12-02 01:02:03`` (a table's width)."""
    if not isinstance(stamp, str):
        return "-"
    return stamp.replace("T", " ")[:19]


@dataclass
class Console:
    """Where a command writes; tests and the real process differ only in the streams."""

    json: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def document(self, body: Any) -> None:
        print(json.dumps(body, indent=2), file=self.out, flush=True)

    def line(self, body: Any) -> None:
        print(json.dumps(body, separators=(",", ":")), file=self.out, flush=True)

    def progress(self, text: str) -> None:
        if self.err.isatty():
            print(text, file=self.err, flush=True)
