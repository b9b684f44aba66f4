"""What the state machine needs from templates; implementations live beside this."""

from __future__ import annotations

from typing import Any, Protocol


class TemplateError(Exception):
    """A template or expression failed: bad syntax, a jq runtime error, or a bound hit.

    ``message`` is a sentence fit for a node run's ERROR log; it names the expression.
    """

    def __init__(self, expression: str, message: str) -> None:
        super().__init__(f"{message} (in {{{{ {expression} }}}})")
        self.expression = expression
        self.message = message


class TemplatesUnavailable(RuntimeError):
    """Templates can't be evaluated right now: not started, stopped, or unable to start.

    Not a :class:`TemplateError`: no template is at fault, so no node should fail for
    it; the caller treats it like any other outage of a dependency.
    """


class Templates(Protocol):
    """Renders ``{{ jq }}`` in JSON values and evaluates bare jq expressions."""

    def render(self, value: Any, context: Any) -> Any:
        """Return ``value`` with every template in its strings evaluated against ``context``.

        A string that is exactly one template keeps the JSON type of the result;
        templates mixed with text are stringified. Raises :class:`TemplateError`
        (or :class:`TemplatesUnavailable` when the implementation is not running).
        """
        ...

    def evaluate(self, expression: str, context: Any) -> Any:
        """Evaluate a bare jq expression (a CONDITION outlet) and return its first output.

        An expression with no output (``empty``) gives ``None``. Raises
        :class:`TemplateError` (or :class:`TemplatesUnavailable`, as ``render`` does).
        """
        ...
