"""The list stream's cursor (``Last-Event-ID``): one position per inbox partition, read
back as it was sent, and refused with a 422 naming the header when it is not one."""

from __future__ import annotations

import pytest

from switchyard.bridge.errors import ApiError
from switchyard.bridge.streams import _cursor, cursor_text

Position = tuple[int, int, int | None]


@pytest.mark.parametrize(
    "positions",
    [
        [(0, 0, None)] * 12,  # before every partition's first entry
        [(1764633600000, 0, None), (0, 0, None), (1764633600123, 7, 2)],
        [(1764633600000 + p, p, None if p % 2 else p) for p in range(12)],
        [(2**63 - 1, 2**63 - 1, 999_999)],
    ],
)
def test_a_cursor_reads_back_as_it_was_sent(positions: list[Position]) -> None:
    text = cursor_text(positions)
    assert _cursor(text, len(positions)) == positions
    assert "," not in text
    assert " " not in text  # one token, as a header value


def test_twelve_partitions_stay_far_below_the_header_limit() -> None:
    widest: list[Position] = [(2**63 - 1, 2**63 - 1, 999_999)] * 12
    assert len(cursor_text(widest)) < 8192


@pytest.mark.parametrize(
    "raw",
    [
        "1764633600000-0",  # one position: the stream has 3 partitions
        "0.0.0.0",  # too many
        "0.x.0",
        "0.-1.0",
        "0..0",
        "1-2-3-4.0.0",
    ],
)
def test_anything_else_is_a_422_naming_the_header(raw: str) -> None:
    with pytest.raises(ApiError) as caught:
        _cursor(raw, 3)
    assert caught.value.status == 422
    assert "header Last-Event-ID" in caught.value.message
