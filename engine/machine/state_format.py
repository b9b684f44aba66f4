"""The format of stored run states, and the steps that bring an older one up to date.

A stored :class:`~switchyard.engine.machine.state.RunState` document carries
``format``. States written before the field was always written carry none: an absent
``format`` means format 1. A release that changes the document's shape adds one step
to :data:`STEPS`; the current format is the first one plus the number of steps, so
the two can't disagree.

The upgrade is lazy: ``load_state`` passes a document that :func:`needs_upgrade`
through :func:`upgrade_document` and the next apply step writes it back in the
current format. A run no event reaches keeps its old document until
``switchyard state upgrade`` rewrites it (``switchyard.engine.store.upgrade``).

Pure: documents in, documents out; the steps never see Redis or a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import orjson

Document = dict[str, Any]
Step = Callable[[Document], Document]
"""Turns a document of format N into one of format N + 1 (``format`` is set after it)."""

FIRST_FORMAT = 1


def _format_2(doc: Document) -> Document:
    """Format 2 adds ``trace`` (optional: the run's ``traceparent``). A format-1
    document is a format-2 one without it; the step exists so that a release reading
    format 1 refuses a format-2 store by its marker, instead of failing on the field."""
    return dict(doc)


# Format N → the step to format N + 1. Append only: a released step is never changed,
# because documents written by any earlier release must still come through it.
STEPS: Mapping[int, Step] = MappingProxyType({1: _format_2})


class StateFormatError(Exception):
    """A stored run state this code can't read: newer than it, or a broken ``format``."""

    retriable = False

    def __init__(self, message: str, *, found: object, supported: int, run_id: str | None) -> None:
        super().__init__(message)
        self.found = found
        self.supported = supported
        self.run_id = run_id


def current_format(steps: Mapping[int, Step] = STEPS) -> int:
    """The format ``steps`` upgrade to; refuses a registry with a gap in it."""
    expected = list(range(FIRST_FORMAT, FIRST_FORMAT + len(steps)))
    if sorted(steps) != expected:
        raise ValueError(
            f"state format steps: must be numbered {expected} without gaps (got {sorted(steps)})"
        )
    return FIRST_FORMAT + len(steps)


CURRENT_FORMAT = current_format()
_CURRENT_PREFIX = b'{"format":%d,' % CURRENT_FORMAT


def document_format(doc: Mapping[str, Any], supported: int = CURRENT_FORMAT) -> int:
    """The format ``doc`` is in (absent: format 1)."""
    found = doc.get("format", FIRST_FORMAT)
    if type(found) is not int or found < FIRST_FORMAT:
        raise StateFormatError(
            f"run state {doc.get('run_id')}: format must be a whole number >= "
            f"{FIRST_FORMAT} (got {found!r})",
            found=found, supported=supported, run_id=_run_id(doc),
        )  # fmt: skip
    return found


def upgrade_document(doc: Document, steps: Mapping[int, Step] = STEPS) -> Document:
    """``doc`` in the current format (a new dict; ``doc`` is left as it was).

    Each step from the document's format to the current one is applied in order. A
    document newer than this code is refused: reading it would drop or misread what
    a later release added, and the next apply step would write that loss back.
    """
    current = current_format(steps)
    found = document_format(doc, current)
    if found > current:
        raise StateFormatError(
            f"run state {doc.get('run_id')} is in format {found}, newer than the {current} "
            f"this release reads: run the release that wrote it (or a later one)",
            found=found, supported=current, run_id=_run_id(doc),
        )  # fmt: skip
    upgraded = dict(doc)
    for step in range(found, current):
        upgraded = steps[step](upgraded)
        upgraded["format"] = step + 1
    # ``format`` first, as the engine's dumps have it: the JSON of an upgraded
    # document then passes needs_upgrade's fast check too.
    upgraded.pop("format", None)
    return {"format": current, **upgraded}


def needs_upgrade(raw: bytes, steps: Mapping[int, Step] = STEPS) -> bool:
    """Whether the stored JSON ``raw`` must go through :func:`upgrade_document`: it is
    not in the current format (older, to upgrade; or newer, to refuse).

    Fast for what the engine writes: ``format`` is the first field of a dumped state,
    so a document that starts with the current one is taken without parsing. Anything
    else is parsed (a nested output may hold a "format" key of its own).
    """
    # The engine's own registry is checked once, at import; every load asks this.
    current = CURRENT_FORMAT if steps is STEPS else current_format(steps)
    if raw.startswith(_CURRENT_PREFIX if steps is STEPS else b'{"format":%d,' % current):
        return False
    doc = orjson.loads(raw)
    if not isinstance(doc, dict):
        raise StateFormatError(
            f"run state: must be a JSON object (got {type(doc).__name__})",
            found=None, supported=current, run_id=None,
        )  # fmt: skip
    return document_format(doc, current) != current


def _run_id(doc: Mapping[str, Any]) -> str | None:
    run_id = doc.get("run_id")
    return run_id if isinstance(run_id, str) else None
