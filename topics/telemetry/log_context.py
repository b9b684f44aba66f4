"""What a log line is about: the run, node run, event and record being handled.

Set with ``with log_context(run_id=..., node_run_id=..., event_type=...,
topic=..., partition=..., offset=...):`` around the handling of one record or
request; every record logged inside carries the fields (the formatters in
``topics/telemetry/logs.py`` print them). Context variables, so concurrent tasks
each see their own, and a nested context adds to the outer one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

_fields: ContextVar[dict[str, Any] | None] = ContextVar("switchyard_log_context", default=None)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Fields for every log record inside; ``None`` values are left out."""
    outer = _fields.get()
    merged = {**(outer or {}), **{k: v for k, v in fields.items() if v is not None}}
    token = _fields.set(merged)
    try:
        yield
    finally:
        _fields.reset(token)


def current_log_context() -> dict[str, Any]:
    return dict(_fields.get() or {})
