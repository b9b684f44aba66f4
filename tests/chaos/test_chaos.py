"""The short chaos run: every kind of kill once under load, then every invariant.

The long one is ``python -m benchmarks.chaos --minutes 30``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from benchmarks.chaos import KINDS, ChaosRun

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(600)
async def test_kills_of_every_process_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    lines: list[str] = []
    chaos = ChaosRun(tmp_path / "stack", rate=6, seed=11, say=lines.append)
    try:
        await asyncio.to_thread(chaos.up)
        # One of each kind of kill (shuffled), a few seconds apart, under a steady load
        # of under two minutes (the kills are done by then: the load stops with them).
        report = await chaos.run(seconds=115, interval=(2.0, 4.0), max_kills=len(KINDS))
    finally:
        chaos.down()
    summary = "\n".join(lines + report.lines())
    assert dict(report.kills) == dict.fromkeys(KINDS, 1), summary
    assert len(report.restarts) == len(KINDS), summary  # each restart timed
    assert report.runs > 100, summary
    assert report.lost == [], summary
    assert report.failed == [], summary
    assert report.stuck == {}, summary
    assert report.wait_checks >= len(KINDS), summary  # mid-chaos, after each kill
    assert report.waiting_on_nothing == set(), summary
    assert report.duplicated == [], summary
    assert report.conflicting_ids == [], summary
    assert report.unexpected_runs == [], summary
    assert report.unexpected_dead_letters == [], summary
    assert report.poison_missing == [], summary
    assert report.poison_dead_lettered == report.poison_sent > 0, summary
    # Exactly once at the deduplicating receiver: each attempt applied, none twice.
    # Each event-triggered run's late webhook called once, completed by its timer once.
    for effects in (report.webhooks, report.handler, report.late_calls, report.timers):
        assert effects.expected == report.runs, summary
        assert effects.missing == [], summary
        assert effects.extra == [], summary
        assert effects.applied == effects.expected, summary
    assert report.unkeyed_calls == 0, summary
    # Each entity written once, its event one run; each schedule tick one run.
    assert report.entity_missing == [], summary
    assert report.entity_writes == report.entity_events == report.runs, summary
    assert report.event_runs == report.runs, summary
    assert report.tick_runs == report.ticks, summary
    assert report.completed == 2 * report.runs + report.ticks, summary
    assert report.exited == set(), summary  # no process ended on its own
    assert report.ok, summary
