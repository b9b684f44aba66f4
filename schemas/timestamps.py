"""Timestamps on the API: ISO-8601 in UTC with milliseconds and ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, PlainSerializer


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_millis(value: datetime) -> datetime:
    """``value`` in UTC, cut to milliseconds: what the wire carries, so a round trip
    through JSON gives back an equal value."""
    utc = as_utc(value)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def format_timestamp(value: datetime) -> str:
    """``2026-01-28T10:00:00.000Z``: what the runs API and seed 001 show."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


Timestamp = Annotated[
    datetime,
    AfterValidator(to_millis),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]
"""A UTC datetime (milliseconds) that serialises to JSON as ``2026-01-28T10:00:00.000Z``."""
