"""The fast path: compiled jq programs run in the engine's own process.

Only expressions :mod:`~switchyard.engine.templates.routing` proved cheap get here.
Skipping the sandbox saves a pipe round trip per template; output is still bounded
exactly as the sandbox bounds it, so the two paths give the same answers.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable
from typing import Any, TypeAlias

import jq
import orjson

from switchyard.engine.templates.limits import (
    TemplateLimits,
    compile_failed,
    jq_failed,
    too_big,
    too_deep,
)
from switchyard.engine.templates.routing import (
    Literal,
    Step,
    fast_paths,
    plain_comparison,
    plain_names,
)
from switchyard.engine.templates.sandbox_child import big_ints_to_floats, first_output


class InProcessProgram:
    """A compiled fast-path expression, safe to run from many threads."""

    __slots__ = ("_comparison", "_lock", "_names", "_needs", "_program", "expression")

    def __init__(self, expression: str) -> None:
        """Compile ``expression``; raises :class:`TemplateError` on a syntax error."""
        self.expression = expression
        try:
            self._program = jq.compile(expression)
        except ValueError as error:
            raise compile_failed(expression, str(error)) from None
        self._names = plain_names(expression)
        self._comparison = plain_comparison(expression)
        paths = fast_paths(expression)
        self._needs: Needs = None if paths is None else _needs(paths)
        # jq.py keeps one jq state per program and compiles a second one when two
        # threads run it at once; the lock keeps a cache hit from ever compiling.
        self._lock = threading.Lock()

    def run(self, context: Any, limits: TemplateLimits) -> Any:
        """The first output against ``context``, or ``None`` when there is none."""
        if self._names is not None:
            found = _member(context, self._names)
            if found is not _ASK_JQ:
                return bounded(self.expression, found, limits)
        if self._comparison is not None:
            names, op, literal = self._comparison
            found = _member(context, names)
            if found is not _ASK_JQ:
                return _compare(found, op, literal)
        # jq parses its input as text at ~20-70 ns a byte, which would make every
        # template cost as much as the whole run's outputs; it gets the paths it reads.
        given = _prune(context, self._needs)
        text = orjson.dumps(given).decode()
        with self._lock:
            try:
                value = first_output(self._program, text)
            except ValueError as error:
                raise jq_failed(self.expression, str(error)) from None
        return bounded(self.expression, value, limits)


# What a program reads of its context, worked out once when it is compiled: the
# object members its paths go through, each with what it reads below (None: the
# value there, whole). Tuples, not the tree of steps: pruning walks them per run.
Needs: TypeAlias = "tuple[tuple[str, Needs], ...] | None"

_ASK_JQ = object()  # a plain path's value that only jq can give as jq gives it
# jq's numbers are doubles: a whole number beyond 2**53 comes back rounded, and a
# float that is whole comes back as an int (1.0 as 1). Those, containers (a copy,
# not the state's own object) and errors are left to jq.
_EXACT_INT = 2**53


def _member(context: Any, names: tuple[str, ...]) -> Any:
    """What ``.a.b…`` gives on ``context`` when the answer is a string, a boolean,
    null or a whole number jq holds exactly; else ``_ASK_JQ``. As in jq, a missing
    member and any member of null are null."""
    value = context
    for name in names:
        if value is None:
            return None
        if not isinstance(value, dict):
            return _ASK_JQ  # jq's error ("Cannot index number with ...") says it best
        value = value.get(name)
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int) and -_EXACT_INT <= value <= _EXACT_INT:
        return value
    return _ASK_JQ


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip


def _jq_order(value: Literal) -> tuple[int, Literal]:
    """Where jq sorts a scalar: null < false < true < numbers < strings, then by value
    (strings by code point, as jq's byte order of UTF-8 has them)."""
    if value is None or isinstance(value, bool):
        return (0 if value is None else 2 if value else 1), 0
    return (3 if isinstance(value, int) else 4), value


def _compare(found: Literal, op: str, literal: Literal) -> bool:
    return _OPERATORS[op](_jq_order(found), _jq_order(literal))


_WHOLE = object()  # in a tree of steps: the value here is read whole


def _needs(paths: list[tuple[Step, ...]]) -> Needs:
    """The members the paths go through (number steps meet an object whole)."""
    root: dict[Any, Any] = {}
    for path in paths:
        node = root
        for step in path:
            node = node.setdefault(step, {})
        node[_WHOLE] = True
    return _members(root)


def _members(tree: dict[Any, Any]) -> Needs:
    if _WHOLE in tree:
        return None
    return tuple((key, _members(below)) for key, below in tree.items() if isinstance(key, str))


def _prune(value: Any, needs: Needs) -> Any:
    """``value`` with only the object members the paths go through.

    Arrays and scalars are kept whole, so a path meets the same types, the same
    members and the same missing keys as in the full value: jq answers (and fails)
    the same way. Number steps on an object meet an object either way.
    """
    if needs is None or not isinstance(value, dict):
        return value
    return {
        key: value[key] if below is None else _prune(value[key], below)
        for key, below in needs
        if key in value
    }


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
