"""The batch pipeline's commit order, on its own (pure asyncio, no broker)."""

from __future__ import annotations

import asyncio

import pytest

from switchyard.consumers.pipeline import BatchPipeline, Offsets


class _Commits:
    def __init__(self) -> None:
        self.made: list[Offsets] = []

    async def __call__(self, offsets: Offsets) -> None:
        self.made.append(dict(offsets))


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_batch_that_finishes_first_waits_for_the_one_fetched_before_it() -> None:
    commits = _Commits()
    pipeline = BatchPipeline(10, commits)
    pipeline.start()
    first, second = asyncio.Event(), asyncio.Event()
    pipeline.add(first.wait(), {"p0": 5, "p1": 3}, 2)
    pipeline.add(second.wait(), {"p0": 9}, 1)
    second.set()
    await _settle()
    assert commits.made == []  # the first is still in hand: nothing of p0 past it
    assert pipeline.in_flight == 2
    first.set()
    await pipeline.drain()
    assert commits.made == [{"p0": 9, "p1": 3}]  # merged into one request


async def test_room_waits_while_full_and_a_failure_stops_the_commits() -> None:
    commits = _Commits()
    pipeline = BatchPipeline(2, commits)
    pipeline.start()
    release = asyncio.Event()

    async def fails() -> None:
        await release.wait()
        raise RuntimeError("report not acknowledged")

    pipeline.add(fails(), {"p0": 1}, 2)
    pipeline.add(asyncio.sleep(0), {"p0": 2}, 0)
    waiting = asyncio.create_task(pipeline.room())
    await _settle()
    assert not waiting.done()  # full: no more records may be fetched
    release.set()
    assert await waiting == 2
    await _settle()  # the committer has seen the failure: the fetch loop is told
    with pytest.raises(RuntimeError, match="report not acknowledged"):
        await pipeline.room()
    with pytest.raises(RuntimeError, match="report not acknowledged"):
        await pipeline.drain()
    assert commits.made == []


async def test_a_fetch_waits_for_a_batch_slot_so_batches_grow_under_load() -> None:
    pipeline = BatchPipeline(100, _Commits(), max_batches=2)
    pipeline.start()
    slow, fast = asyncio.Event(), asyncio.Event()
    pipeline.add(slow.wait(), {"p0": 1}, 1)
    pipeline.add(fast.wait(), {"p1": 1}, 1)
    waiting = asyncio.create_task(pipeline.room())
    await _settle()
    assert not waiting.done()  # two batches unfinished: records accumulate meanwhile
    fast.set()  # any batch finishing frees a slot, not only the oldest
    assert await waiting == 99
    slow.set()
    await pipeline.drain()


async def test_abandon_cancels_the_batches_in_hand_and_commits_nothing() -> None:
    commits = _Commits()
    pipeline = BatchPipeline(10, commits)
    pipeline.start()
    never = asyncio.Event()
    work = asyncio.ensure_future(never.wait())
    pipeline.add(work, {"p0": 1}, 1)
    pipeline.abandon()
    await _settle()
    assert work.cancelled()
    assert commits.made == []
