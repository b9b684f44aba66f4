"""A small thread-safe least-recently-used map, for parsed strings and compiled programs."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most ``capacity`` entries; a hit makes an entry the most recent.

    Values are built by the caller outside the lock (a jq compile takes ~1.5 ms and
    must not stall hits in other threads); two threads missing the same key at once
    both build it and the second ``put`` wins, which is harmless for pure values.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("LruCache.capacity: must be at least 1")
        self._capacity = capacity
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            if len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
