"""Timestamps on the API: ISO-8601 in UTC with milliseconds and ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator, PlainSerializer


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# One engine step validates and formats the same few instants (its clock's ``now``,
# the run's created/updated times) about ten times each, at 1 to 4 µs a time; a few
# thousand cover the runs of a batch. Cached by value: datetimes that compare equal
# are the same instant (a naive one never equals an aware one), so they give the same
# result.
TIMESTAMPS_KEPT = 4096


@lru_cache(maxsize=TIMESTAMPS_KEPT)
def to_millis(value: datetime) -> datetime:
    """``value`` in UTC, cut to milliseconds: what the wire carries, so a round trip
    through JSON gives back an equal value."""
    utc = as_utc(value)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


@lru_cache(maxsize=TIMESTAMPS_KEPT)
def format_timestamp(value: datetime) -> str:
    """``2026-01-28T10:00:00.000Z``: what the runs API and seed 001 show."""
    utc = as_utc(value)
    if utc.year < 1000:  # strftime writes such a year unpadded; kept as it was
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    # The same text without strftime, which costs several µs here (the C library
    # looks at the time zone on every call).
    return (
        f"{utc.year}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


Timestamp = Annotated[
    datetime,
    AfterValidator(to_millis),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]
"""A UTC datetime (milliseconds) that serialises to JSON as ``2026-01-28T10:00:00.000Z``."""
