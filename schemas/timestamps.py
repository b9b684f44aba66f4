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


def format_timestamp(value: datetime) -> str:
    """``2026-01-28T10:00:00.000Z``: what the runs API and seed 001 show."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


Timestamp = Annotated[
    datetime,
    AfterValidator(as_utc),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]
"""A UTC datetime that serialises to JSON as ``2026-01-28T10:00:00.000Z``."""
