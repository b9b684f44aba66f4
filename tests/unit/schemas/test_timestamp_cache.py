"""Timestamps are validated and formatted once per instant (cached by value), and the
cache can't give one instant another's text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from switchyard.schemas.timestamps import format_timestamp, to_millis

AT = datetime(2026, 1, 28, 10, 0, 0, 123456, tzinfo=UTC)


def test_the_same_instant_is_formatted_once() -> None:
    format_timestamp(AT)
    hits = format_timestamp.cache_info().hits
    assert format_timestamp(AT) == "2026-01-28T10:00:00.123Z"
    assert format_timestamp.cache_info().hits == hits + 1


def test_equal_instants_in_other_zones_give_the_utc_text() -> None:
    paris = AT.astimezone(timezone(timedelta(hours=1)))
    assert paris == AT
    assert format_timestamp(paris) == format_timestamp(AT) == "2026-01-28T10:00:00.123Z"
    assert to_millis(paris) == to_millis(AT) == AT.replace(microsecond=123000)
    assert to_millis(paris).tzinfo is UTC


def test_a_naive_datetime_is_utc_and_not_confused_with_its_wall_time_elsewhere() -> None:
    naive = AT.replace(tzinfo=None)
    same_wall_time = naive.replace(tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(naive) == "2026-01-28T10:00:00.123Z"
    assert format_timestamp(same_wall_time) == "2026-01-28T08:00:00.123Z"
    assert to_millis(naive) == AT.replace(microsecond=123000)
    assert to_millis(same_wall_time) == AT.replace(hour=8, microsecond=123000)


def test_instants_a_microsecond_apart_keep_their_own_milliseconds() -> None:
    edge = datetime(2026, 1, 28, 10, 0, 0, 999999, tzinfo=UTC)
    assert format_timestamp(edge) == "2026-01-28T10:00:00.999Z"
    assert format_timestamp(edge + timedelta(microseconds=1)) == "2026-01-28T10:00:01.000Z"


def test_the_text_is_what_strftime_writes() -> None:
    instants = [AT, datetime(1, 1, 1, tzinfo=UTC), datetime(999, 12, 31, 23, 59, 59, 999999)]
    instants += [datetime(1000, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999)]
    instants += [AT + timedelta(days=d, seconds=d * 3607, microseconds=d * 917) for d in range(400)]
    for instant in instants:
        utc = instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant
        strftime = utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
        assert format_timestamp(instant) == strftime
