"""The engine's :class:`~switchyard.engine.templates.protocol.Templates`: jq, bounded."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

import orjson

from switchyard.engine import metrics
from switchyard.engine.templates.cache import LruCache
from switchyard.engine.templates.in_process import InProcessProgram
from switchyard.engine.templates.limits import TemplateLimits
from switchyard.engine.templates.pool import SandboxPool
from switchyard.engine.templates.protocol import TemplateError
from switchyard.engine.templates.render import Substitution, collect
from switchyard.engine.templates.routing import Route, route
from switchyard.engine.templates.scanner import Parsed, parse

# What the plan cache holds for an expression: a program for the fast path, the
# sandbox route, or the error that refuses it (so a bad expression isn't re-examined).
_Plan = InProcessProgram | Route | TemplateError


class JqTemplates:
    """Renders ``{{ jq }}`` templates and evaluates conditions, each within ``limits``.

    Expressions that are plain paths and comparisons run in this process from a
    compile cache; the rest run in a pool of sandbox processes that are killed when
    a template overruns its time or memory. Long-lived: ``start()`` before use (or
    ``with JqTemplates(limits) as templates:``), ``stop()`` at the end. Calls are
    synchronous and thread-safe; a call blocks while every sandbox worker is busy.

    ``render``/``evaluate`` raise :class:`TemplateError` when a template is at fault
    and :class:`TemplatesUnavailable` (a ``RuntimeError``) when the object is not
    running. Rendering checks the syntax of every template in the value first, then
    evaluates them, and raises the first failure in document order.
    """

    def __init__(self, limits: TemplateLimits, *, cache_size: int = 1024) -> None:
        self._limits = limits
        self._pool = SandboxPool(limits)
        self._plans: LruCache[str, _Plan] = LruCache(cache_size)
        self._parsed: LruCache[str, Parsed] = LruCache(4 * cache_size)

    @property
    def limits(self) -> TemplateLimits:
        return self._limits

    def start(self) -> None:
        """Start the sandbox workers; a second call (even after ``stop``) is an error."""
        self._pool.start()

    def stop(self) -> None:
        """Kill the sandbox workers; calls in flight fail as unavailable. Idempotent."""
        self._pool.stop()

    def __enter__(self) -> JqTemplates:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def render(self, value: Any, context: Any) -> Any:
        """See :meth:`Templates.render`. A value without templates is returned as is."""
        expressions = collect(value, self._parse)
        if not expressions:
            return value
        results = self._evaluate_all(expressions, context)
        return Substitution(self._parse, results, self._limits).apply(value)

    def evaluate(self, expression: str, context: Any) -> Any:
        """See :meth:`Templates.evaluate`; no output evaluates to ``None``."""
        return self._evaluate_all([expression], context)[expression]

    def sandbox_pids(self) -> list[int]:
        """Process ids of the idle sandbox workers (for tests and diagnostics)."""
        return self._pool.worker_pids()

    def _evaluate_all(self, expressions: list[str], context: Any) -> dict[str, Any]:
        """Every expression's result, timed (one render or evaluation)."""
        started = time.perf_counter()
        try:
            return self._evaluate_in_order(expressions, context)
        finally:
            metrics.template_evaluated(started)

    def _evaluate_in_order(self, expressions: list[str], context: Any) -> dict[str, Any]:
        """Every expression's result; raises the first failure in ``expressions`` order.

        Fast-path expressions run first, in order, and stop at their first failure;
        sandbox expressions before that point then go to one worker as one batch. The
        sandbox list only holds expressions earlier than any fast-path failure, so its
        failure, if any, is the first one.
        """
        self._pool.check_running()  # even when every expression takes the fast path
        results: dict[str, Any] = {}
        sandboxed: list[str] = []
        failure: TemplateError | None = None
        for expression in expressions:
            plan = self._plan(expression)
            if isinstance(plan, TemplateError):
                # A fresh exception each time: re-raising a cached one would grow its traceback.
                failure = TemplateError(plan.expression, plan.message)
            elif isinstance(plan, InProcessProgram):
                try:
                    results[expression] = plan.run(context, self._limits)
                except TemplateError as error:
                    failure = error
            else:
                sandboxed.append(expression)
            if failure is not None:
                break
        if sandboxed:
            values = self._pool.run(sandboxed, orjson.dumps(context))
            results.update(zip(sandboxed, values, strict=True))
        if failure is not None:
            raise failure
        return results

    def _plan(self, expression: str) -> _Plan:
        plan = self._plans.get(expression)
        if plan is None:
            try:
                if route(expression) is Route.IN_PROCESS:
                    plan = InProcessProgram(expression)
                else:
                    plan = Route.SANDBOX
            except TemplateError as error:
                # Kept without the traceback, whose frames the cache would keep alive.
                plan = TemplateError(error.expression, error.message)
            self._plans.put(expression, plan)
        return plan

    def _parse(self, text: str) -> Parsed:
        parsed = self._parsed.get(text)
        if parsed is None:
            parsed = parse(text)
            self._parsed.put(text, parsed)
        return parsed
