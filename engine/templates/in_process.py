"""The fast path: compiled jq programs run in the engine's own process.

Only expressions :mod:`~switchyard.engine.templates.routing` proved cheap get here.
Skipping the sandbox saves a pipe round trip per template; output is still bounded
exactly as the sandbox bounds it, so the two paths give the same answers.
"""

from __future__ import annotations

import threading
from typing import Any

import jq
import orjson

from switchyard.engine.templates.limits import (
    TemplateLimits,
    compile_failed,
    jq_failed,
    too_big,
    too_deep,
)
from switchyard.engine.templates.sandbox_child import big_ints_to_floats, first_output


class InProcessProgram:
    """A compiled fast-path expression, safe to run from many threads."""

    __slots__ = ("_lock", "_program", "expression")

    def __init__(self, expression: str) -> None:
        """Compile ``expression``; raises :class:`TemplateError` on a syntax error."""
        self.expression = expression
        try:
            self._program = jq.compile(expression)
        except ValueError as error:
            raise compile_failed(expression, str(error)) from None
        # jq.py keeps one jq state per program and compiles a second one when two
        # threads run it at once; the lock keeps a cache hit from ever compiling.
        self._lock = threading.Lock()

    def run(self, context: str, limits: TemplateLimits) -> Any:
        """The first output against ``context`` (JSON text), or ``None`` when there is none."""
        with self._lock:
            try:
                value = first_output(self._program, context)
            except ValueError as error:
                raise jq_failed(self.expression, str(error)) from None
        return bounded(self.expression, value, limits)


def bounded(expression: str, value: Any, limits: TemplateLimits) -> Any:
    """``value`` made storable, under the size the sandbox would allow it.

    Sizes are measured as orjson's JSON, like the sandbox does, so a template fails
    the same way on either path. Short strings and scalars skip the measurement.
    """
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return big_ints_to_floats(value)
    if isinstance(value, str) and 6 * len(value) + 2 <= limits.max_output_bytes:
        return value  # a JSON string is at most 6 bytes a character plus quotes
    try:
        data = orjson.dumps(value)
    except orjson.JSONEncodeError as error:
        if "Integer" not in str(error):
            raise too_deep(expression) from None
        value = big_ints_to_floats(value)
        data = orjson.dumps(value)
    if len(data) > limits.max_output_bytes:
        raise too_big(expression, limits)
    return value
