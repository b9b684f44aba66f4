"""The process-wide switch of metric recording, and helpers every process's metrics
share.

Prometheus' client keeps its metrics in one registry per process (its default), so
the metrics of each part live as module-level objects beside the code that records
them (``engine/metrics.py``, ``bridge/metrics.py``, ``consumers/metrics.py``). With
``SWITCHYARD_METRICS_ENABLED=false`` the entry point calls ``set_enabled(False)`` and
every recording helper returns at once: that is the "metrics off" the benchmark
compares against.

Gauges whose truth lives in Redis (node runs in flight, claims pending) are not
kept in memory, where a restart or a second process would make them wrong: a
*refresher* reads them when ``/metrics`` is scraped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

# Seconds: from a millisecond step (one engine batch) to a long run.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)  # fmt: skip
# Records per engine batch, up to the largest SWITCHYARD_ENGINE_BATCH_MAX sensible.
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)

Refresher = Callable[[], Awaitable[None]]

_enabled = True
_refreshers: list[Refresher] = []


def set_enabled(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    """Whether to record; every recording helper checks this first."""
    return _enabled


def add_refresher(refresh: Refresher) -> None:
    """Run ``refresh`` before each scrape (it sets gauges from Redis or a consumer)."""
    _refreshers.append(refresh)


def refreshers() -> list[Refresher]:
    return list(_refreshers)


def clear_refreshers() -> None:
    """For tests that build several processes' parts in one interpreter."""
    _refreshers.clear()
