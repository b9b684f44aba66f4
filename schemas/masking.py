"""Hiding secret values in what the engine stores: node run logs and outputs."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson

MASK = "****"
MIN_SECRET_LENGTH = 4


def mask_secrets(
    value: Any, secrets: Mapping[str, str], *, min_length: int = MIN_SECRET_LENGTH
) -> Any:
    """``value`` with every occurrence of a secret's value, in any string, replaced by ``****``.

    Walks dicts (keys too) and lists; what holds no secret comes back as the same
    object. Values shorter than ``min_length`` are left alone: masking every "a"
    would wreck the text and, by where the masks fall, tell the secret anyway.
    Occurrences that overlap (``abcd`` and ``cdef`` in ``abcdef``) are masked as one
    span, so no piece of either shows. A secret is also looked for as it appears
    inside a JSON string (``"`` and ``\\`` escaped), as in a logged request body.
    """
    if not secrets:
        return value
    needles = _needles(tuple(secrets.values()), min_length)
    if not needles:
        return value
    return _mask(value, needles)


# The engine masks every log line and output of a step with the same server secrets:
# their search strings are worked out once per set of values, not once per string.
@lru_cache(maxsize=64)
def _needles(values: tuple[str, ...], min_length: int) -> tuple[str, ...]:
    found: set[str] = set()
    for secret in values:
        if len(secret) < min_length:
            continue
        found.add(secret)
        found.add(orjson.dumps(secret).decode()[1:-1])
    return tuple(sorted(found, key=len, reverse=True))


def _mask(value: Any, needles: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return _mask_text(value, needles)
    if isinstance(value, dict):
        masked: dict[Any, Any] = {}
        changed = False
        for key, item in value.items():
            new_key, new_item = _mask(key, needles), _mask(item, needles)
            changed = changed or new_key is not key or new_item is not item
            masked[new_key] = new_item
        return masked if changed else value
    if isinstance(value, list):
        items = [_mask(item, needles) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def _mask_text(text: str, needles: tuple[str, ...]) -> str:
    spans: list[tuple[int, int]] = []
    for needle in needles:
        start = text.find(needle)
        while start >= 0:
            spans.append((start, start + len(needle)))
            start = text.find(needle, start + 1)
    if not spans:
        return text
    spans.sort()
    merged = [spans[0]]
    for start, end in spans[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:  # overlapping or touching: one mask, so nothing shows between
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    pieces: list[str] = []
    position = 0
    for start, end in merged:
        pieces += [text[position:start], MASK]
        position = end
    pieces.append(text[position:])
    return "".join(pieces)
