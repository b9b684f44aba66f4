"""Which tick a schedule fires (``due_tick``, pure): never a tick before the schedule
was defined or at/before the last one fired, only the latest after downtime, and the
missed ones reported; ``latest_tick`` at exact ticks and between them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from switchyard.engine.schedule_ticks import SKIPPED_COUNT_MAX, DueTick, due_tick, next_tick
from switchyard.engine.scheduler import schedule_run_id
from switchyard.schemas.cron import latest_tick

EVERY_5 = "*/5 * * * *"


def at(hour: int, minute: int, second: int = 0, micro: int = 0, day: int = 4) -> datetime:
    return datetime(2031, 3, day, hour, minute, second, micro, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "tick"),
    [
        (at(9, 5), at(9, 5)),  # exactly on a tick: that tick
        (at(9, 5, 30), at(9, 5)),  # within a tick's minute: still the tick, not "now"
        (at(9, 5, 0, 1), at(9, 5)),
        (at(9, 4, 59, 999_999), at(9, 0)),
        (at(9, 9, 59), at(9, 5)),
    ],
)
def test_latest_tick_is_a_tick_at_or_before_now(now: datetime, tick: datetime) -> None:
    assert latest_tick(EVERY_5, now) == tick


def test_a_schedule_never_fired_does_not_fire_a_tick_before_it_was_defined() -> None:
    defined = at(9, 3)
    assert due_tick(EVERY_5, last_fired=None, defined_at=defined, now=at(9, 3, 30)) is None
    assert due_tick(EVERY_5, last_fired=None, defined_at=defined, now=at(9, 4, 59)) is None
    assert due_tick(EVERY_5, last_fired=None, defined_at=defined, now=at(9, 5)) == DueTick(at(9, 5))
    assert due_tick(EVERY_5, last_fired=None, defined_at=defined, now=at(9, 7)) == DueTick(at(9, 5))


def test_a_tick_at_the_moment_of_definition_is_not_fired() -> None:
    assert due_tick(EVERY_5, last_fired=None, defined_at=at(9, 5), now=at(9, 9)) is None


def test_a_fired_tick_is_not_fired_again_and_the_next_one_is() -> None:
    defined = at(9, 3)
    for now in (at(9, 5), at(9, 5, 1), at(9, 9, 59)):
        assert due_tick(EVERY_5, last_fired=at(9, 5), defined_at=defined, now=now) is None
    assert due_tick(EVERY_5, last_fired=at(9, 5), defined_at=defined, now=at(9, 10, 2)) == DueTick(
        at(9, 10)
    )


def test_after_downtime_only_the_latest_tick_fires_and_the_missed_ones_are_reported() -> None:
    due = due_tick(EVERY_5, last_fired=at(9, 15), defined_at=at(9, 3), now=at(9, 42))
    assert due == DueTick(at(9, 40), skipped=4, first_skipped=at(9, 20), last_skipped=at(9, 35))


def test_a_first_look_late_skips_the_ticks_since_the_definition() -> None:
    due = due_tick(EVERY_5, last_fired=None, defined_at=at(9, 3), now=at(9, 17))
    assert due == DueTick(at(9, 15), skipped=2, first_skipped=at(9, 5), last_skipped=at(9, 10))


def test_a_new_version_starts_from_the_time_it_was_saved() -> None:
    # Fired 09:05 under */5; at 09:07 a new version says hourly: 10:00 is the next tick,
    # and a */5 version saved at 09:12 does not fire the 09:10 tick it came after.
    assert due_tick("0 * * * *", last_fired=at(9, 5), defined_at=at(9, 7), now=at(9, 59)) is None
    assert due_tick("0 * * * *", last_fired=at(9, 5), defined_at=at(9, 7), now=at(10, 0, 3)) == (
        DueTick(at(10, 0))
    )
    assert due_tick(EVERY_5, last_fired=at(9, 5), defined_at=at(9, 12), now=at(9, 14)) is None


def test_a_record_ahead_of_the_clock_fires_nothing() -> None:
    # Another scheduler whose clock runs ahead recorded 09:10: nothing until after it.
    assert due_tick(EVERY_5, last_fired=at(9, 10), defined_at=at(9, 3), now=at(9, 8)) is None


def test_a_very_long_outage_counts_the_missed_ticks_up_to_a_bound() -> None:
    due = due_tick(EVERY_5, last_fired=at(0, 0, day=1), defined_at=at(0, 0, day=1),
                   now=datetime(2031, 5, 1, 0, 1, tzinfo=UTC))  # fmt: skip
    assert due is not None
    assert due.tick == datetime(2031, 5, 1, 0, 0, tzinfo=UTC)
    assert (due.skipped, due.skipped_more) == (SKIPPED_COUNT_MAX, True)
    assert due.first_skipped == at(0, 5, day=1)
    assert due.last_skipped == datetime(2031, 4, 30, 23, 55, tzinfo=UTC)


def test_the_run_id_is_a_function_of_workflow_node_and_tick() -> None:
    run = schedule_run_id("nightly", "trigger", at(9, 5))
    assert run == schedule_run_id("nightly", "trigger", at(9, 5))
    assert run.startswith("wfr_")
    others = {
        schedule_run_id("nightly", "trigger", at(9, 10)),
        schedule_run_id("nightly", "other", at(9, 5)),
        schedule_run_id("weekly", "trigger", at(9, 5)),
    }
    assert run not in others
    assert len(others) == 3


@pytest.mark.parametrize(
    ("last_fired", "defined_at", "first"),
    [
        (None, at(9, 3), at(9, 5)),
        (None, at(9, 5), at(9, 10)),
        (at(9, 5), at(9, 3), at(9, 10)),
        (at(9, 5), at(9, 12), at(9, 15)),
    ],
)
def test_nothing_is_due_exactly_until_the_next_tick(
    last_fired: datetime | None, defined_at: datetime, first: datetime
) -> None:
    assert next_tick(EVERY_5, last_fired=last_fired, defined_at=defined_at) == first
    before = first.replace(second=0) - timedelta(microseconds=1)
    assert due_tick(EVERY_5, last_fired=last_fired, defined_at=defined_at, now=before) is None
    due = due_tick(EVERY_5, last_fired=last_fired, defined_at=defined_at, now=first)
    assert due is not None
    assert due.tick == first
