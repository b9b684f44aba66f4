"""The errors of ``switchyard.schemas``: one tree, context as attributes.

::

    SchemaError                      anything this package refuses; ``retriable = False``
    ├── ProblemsError                a value with one or more named problems
    │   ├── WorkflowInvalid          a workflow definition breaks the schema or a graph rule
    │   ├── InputsInvalid            run inputs don't match the trigger's ``userInputs``
    │   ├── BlueprintInvalid         a blueprint breaks a rule (in ``entity_rules``)
    │   └── EntityInvalid            an entity doesn't match its blueprint (``entity_rules``)
    └── DecodeError                  bytes on the wire that are not a valid message

A problem is ``(field_path, message)``: ``("nodes[3].config.type", "UPSERT_ENTITY is
not supported by this server")``. ``str()`` of a :class:`ProblemsError` joins them as
``"path: message; path: message"``, which is what an API error body or a dead-letter
reason shows. None of these is retriable: the same input fails the same way again.
"""

from __future__ import annotations

from collections.abc import Iterable

Problem = tuple[str, str]
"""``(field_path, message)``; the path uses ``a.b[2].c`` notation."""


class SchemaError(Exception):
    """Base of every error raised by ``switchyard.schemas``."""

    retriable = False


class ProblemsError(SchemaError):
    """A value was refused for one or more reasons, each naming its field."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__(format_problems(self.problems))


class WorkflowInvalid(ProblemsError):
    """A workflow definition breaks the schema or a graph rule (HTTP 422)."""


class InputsInvalid(ProblemsError):
    """Run inputs don't satisfy the trigger's ``userInputs`` (HTTP 422)."""


class DecodeError(SchemaError):
    """Bytes that are not a valid message; ``raw`` is kept for the dead-letter topic."""

    def __init__(self, raw: bytes, reason: str) -> None:
        super().__init__(reason)
        self.raw = raw
        self.reason = reason


def format_problems(problems: Iterable[Problem]) -> str:
    """``"path: message; path: message"`` (a problem without a path shows its message)."""
    return "; ".join(f"{path}: {message}" if path else message for path, message in problems)
