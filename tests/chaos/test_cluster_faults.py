"""Faults under load on the cluster stack: a broker, a Redis master and one of two
engines killed in turn (``benchmarks/cluster_faults.py``); nothing lost, applied twice
or stuck afterwards."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from benchmarks.cluster_faults import FAULTS, ClusterFaults

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(600)
async def test_a_broker_a_redis_master_and_an_engine_killed_lose_and_repeat_nothing(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    faults = ClusterFaults(tmp_path / "stack", rate=8, say=lines.append)
    try:
        await asyncio.to_thread(faults.up)
        report = await faults.run_faults(gap=10.0)
    finally:
        await asyncio.to_thread(faults.down)
    summary = "\n".join([*lines, *report.lines(), f"restarted {dict(faults.restarts)}"])
    assert dict(report.kills) == dict.fromkeys(FAULTS, 1), summary
    assert report.runs > 200, summary
    assert report.lost == [], summary
    assert report.failed == [], summary
    assert report.stuck == {}, summary
    assert report.wait_checks >= len(FAULTS), summary
    assert report.waiting_on_nothing == set(), summary
    assert report.duplicated == [], summary
    assert report.conflicting_ids == [], summary
    assert report.unexpected_dead_letters == [], summary
    assert report.poison_dead_lettered == report.poison_sent > 0, summary
    assert report.completed == report.runs, summary
