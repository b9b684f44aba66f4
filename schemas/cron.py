"""Schedule triggers' ``cron`` (UTC): parsed by croniter, at most one tick per 5 minutes.

Port's scheduler fires a workflow at most once every 5 minutes; an expression that
asks for more is refused at definition (a 422 saying so) rather than silently
thinned out. Standard 5 fields, a 6th for seconds, and the ``@daily``-style
descriptors are accepted, as Port's validator does.
"""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter

MIN_INTERVAL_SECONDS = 300
# Gaps are measured over this many ticks from two starting points: enough to see
# every minute, hour and weekday combination an expression can produce in a day.
_TICKS_CHECKED = 600
_STARTS = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2028, 2, 28, 23, 0, tzinfo=UTC))


def check_cron(expression: str) -> str:
    """``expression`` stripped, or ValueError saying what is wrong with it."""
    expression = " ".join(expression.split())
    if not croniter.is_valid(expression):
        raise ValueError(f"{expression!r} is not a cron expression (5 fields, UTC)")
    gap = shortest_gap(expression)
    if gap < MIN_INTERVAL_SECONDS:
        raise ValueError(
            f"{expression!r} fires every {gap:g} s at its closest; schedules fire at most "
            f"every {MIN_INTERVAL_SECONDS // 60} minutes"
        )
    return expression


def shortest_gap(expression: str) -> float:
    """The shortest time between two ticks of ``expression`` seen, in seconds."""
    shortest = float("inf")
    for start in _STARTS:
        ticks = croniter(expression, start)
        previous = ticks.get_next(datetime)
        for _ in range(_TICKS_CHECKED):
            tick = ticks.get_next(datetime)
            shortest = min(shortest, (tick - previous).total_seconds())
            if shortest < MIN_INTERVAL_SECONDS:
                return shortest
            previous = tick
    return shortest


def latest_tick(expression: str, now: datetime) -> datetime:
    """The last tick of ``expression`` at or before ``now`` (UTC)."""
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    # Not croniter.match: it matches a whole minute, so 09:05:30 would "be" a tick of
    # */5 and the tick (a run id is derived from it) would depend on when one looked.
    before = croniter(expression, now).get_prev(datetime)  # strictly before now
    at = croniter(expression, before).get_next(datetime)
    return at if at <= now else before


def ticks_between(expression: str, after: datetime, until: datetime) -> list[datetime]:
    """Every tick in ``(after, until]``, oldest first."""
    found = []
    ticks = croniter(expression, after)
    while (tick := ticks.get_next(datetime)) <= until:
        found.append(tick)
    return found
