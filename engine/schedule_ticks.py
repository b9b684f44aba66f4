"""Which tick of a schedule is due: a pure decision, so the scheduler's rules are
tested without Redis, Kafka or a clock.

A schedule fires the latest tick at or before ``now`` that is later than both the
last tick it fired and the time its version was defined: a workflow created at
09:03 with ``*/5`` fires first at 09:05, never a past tick; a new version (a changed
cron, a re-published trigger) starts from the time it was saved. Ticks between the
baseline and the one fired were missed (the scheduler was down or late): they are
reported, not fired, so a long outage ends in one run, not a burst.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from croniter import croniter

from switchyard.schemas.cron import latest_tick

# Counting missed ticks walks them one by one; past this many (two years of */5
# downtime is ~210,000) the report says "at least".
SKIPPED_COUNT_MAX = 10_000


@dataclass(frozen=True)
class DueTick:
    """The tick to fire, and the missed ones before it that are not fired."""

    tick: datetime
    skipped: int = 0
    first_skipped: datetime | None = None
    last_skipped: datetime | None = None
    # The count stopped at SKIPPED_COUNT_MAX: ``skipped`` is a lower bound.
    skipped_more: bool = False


def _after(last_fired: datetime | None, defined_at: datetime) -> datetime:
    """Only ticks later than this may fire."""
    return defined_at if last_fired is None else max(last_fired, defined_at)


def next_tick(cron: str, *, last_fired: datetime | None, defined_at: datetime) -> datetime:
    """The first tick that may fire: ``due_tick`` is None exactly while ``now`` is
    before it (the scheduler keeps it, so a pass need not evaluate every cron)."""
    next_one: datetime = croniter(cron, _after(last_fired, defined_at)).get_next(datetime)
    return next_one


def due_tick(
    cron: str, *, last_fired: datetime | None, defined_at: datetime, now: datetime
) -> DueTick | None:
    """The tick of ``cron`` to fire at ``now``, or None when none is due.

    ``last_fired`` is the last tick fired for this schedule (None: never),
    ``defined_at`` when the version being fired was saved.
    """
    after = _after(last_fired, defined_at)
    tick = latest_tick(cron, now)
    if tick <= after:
        return None
    return _with_skipped(cron, after, tick)


def _with_skipped(cron: str, after: datetime, tick: datetime) -> DueTick:
    ticks = croniter(cron, after)
    first: datetime | None = None
    last: datetime | None = None
    count = 0
    while (missed := ticks.get_next(datetime)) < tick:
        if count == SKIPPED_COUNT_MAX:
            # Counting stops; the last missed tick is the one just before ``tick``.
            before = croniter(cron, tick).get_prev(datetime)
            return DueTick(tick, count, first, before, skipped_more=True)
        if first is None:
            first = missed
        last = missed
        count += 1
    return DueTick(tick, count, first, last)
