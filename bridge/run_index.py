"""``GET /v1/workflows/runs`` over the engine's index sorted sets, without a scan of runs.

Each filter is a union of index sets (``statuses=A&statuses=B`` → status:A or status:B);
the filters are intersected, in one MULTI per inbox partition (each partition keeps
its own indexes, in its runs' hash slot: ``docs/cluster-layout.md``), into a
temporary sorted set per partition; the partitions' first ``offset + limit`` are read
newest first and merged by ``createdAt``, and the scratch sets dropped. A Member's visibility is one
more filter: their own runs, the runs of workflows that let anyone view runs, or the
runs of the workflow versions whose INPUT nodes they answer (each the intersection
of the workflow's and the version's index).

``createdAfter``/``createdBefore`` bound the read by score (``createdAt`` ms,
inclusive); ``entity`` is one more index, the runs associated with that entity
(``sy:runs:entity:<blueprint>/<entity>``, written by the engine as each run starts).

``stuck=true`` (:func:`find_stuck`) reads the unfinished runs among those (the
IN_PROGRESS and CANCELLING indexes) page by page and keeps the ones whose
``waitingOn`` is empty; ``offset``/``limit`` count stuck runs. In a sound system it
finds none, so it reads every unfinished run: a diagnostic, not a hot path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio.client import Pipeline

from switchyard.bridge.context import BridgeContext
from switchyard.bridge.credentials import Actor
from switchyard.bridge.responders import names
from switchyard.bridge.views import LoadedRun, load_run
from switchyard.engine.machine.graph import Graph
from switchyard.engine.machine.state import load_state
from switchyard.engine.machine.waits import waits
from switchyard.engine.store import keys

_TEMP_TTL_SECONDS = 30
# Runs read per round trip by the stuck scan.
_STUCK_PAGE = 200
UNFINISHED = ("IN_PROGRESS", "CANCELLING")


@dataclass
class RunQuery:
    workflow_identifiers: list[str] = field(default_factory=list)
    run_identifiers: list[str] = field(default_factory=list)
    workflow_versions: list[int] = field(default_factory=list)
    created_by: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    # createdAt bounds in ms since the epoch, inclusive (createdAfter/createdBefore).
    created_after: float | None = None
    created_before: float | None = None
    # (blueprint, entity): the runs associated with that entity.
    entity: tuple[str, str] | None = None
    limit: int = 100
    offset: int = 0

    def page_bounds(self) -> tuple[str, str]:
        """ZREVRANGEBYSCORE's max and min over ``createdAt``."""
        high = "+inf" if self.created_before is None else repr(self.created_before)
        low = "-inf" if self.created_after is None else repr(self.created_after)
        return high, low


def temp_key(tag: str) -> str:
    """A bridge-owned scratch sorted set (see keys.py, bridge section)."""
    return f"{keys.PREFIX}bridge:tmp:{tag}"


# An index set of a partition (the partition's hash tag → its key), or the
# intersection of several (a workflow's runs of one version).
Index = Callable[[str], str]
Source = Index | tuple[Index, ...]


def _index(key: Callable[..., str], *args: object) -> Index:
    return lambda tag: key(*args, tag)


def _fixed(key: str) -> Index:
    """An index that is one key whatever the partition (a scratch set of its own)."""
    return lambda _tag: key


async def _member_visible(ctx: BridgeContext, actor: Actor, query: RunQuery) -> list[Source]:
    """Index sets whose union is what a Member may see: their own runs, the runs of
    workflows that let anyone view them (their newest version says), and the runs of
    the versions whose INPUT nodes they answer. One round trip: each version's view
    facts are stored beside it (``WorkflowStore.view_facts``), nothing is parsed."""
    if query.workflow_identifiers:
        candidates = query.workflow_identifiers
    else:
        candidates = [_text(w) for w in await ctx.redis.zrange(keys.WORKFLOWS, 0, -1)]
    visible: list[Source] = [_index(keys.runs_by, actor.name)]
    for workflow, versions in (await ctx.workflows.view_facts(candidates)).items():
        if versions[max(versions)].anyone:
            visible.append(_index(keys.runs_of_workflow, workflow))
            continue
        visible += [
            (_index(keys.runs_of_workflow, workflow), _index(keys.runs_of_version, version))
            for version, facts in versions.items()
            if names(actor, facts.users, facts.roles, facts.teams)
        ]
    return visible


async def _groups(ctx: BridgeContext, actor: Actor, query: RunQuery) -> list[list[Source]]:
    """One list of indexes per filter: the union of each, intersected together."""
    pairs: tuple[tuple[Sequence[object], Callable[..., str]], ...] = (
        (query.workflow_identifiers, keys.runs_of_workflow),
        (query.created_by, keys.runs_by),
        (query.statuses, keys.runs_with_status),
        (query.results, keys.runs_with_result),
        (query.workflow_versions, keys.runs_of_version),
    )
    groups: list[list[Source]] = [
        [_index(key, value) for value in values] for values, key in pairs if values
    ]
    if query.entity is not None:
        groups.append([_index(keys.runs_of_entity, *query.entity)])
    if not actor.is_privileged:
        groups.append(await _member_visible(ctx, actor, query))
    return groups


async def find_runs(ctx: BridgeContext, actor: Actor, query: RunQuery) -> list[LoadedRun]:
    """The page of runs matching ``query``, newest first. Each inbox partition keeps
    its own indexes (in its runs' slot), so each partition's first ``offset + limit``
    are read and merged by ``createdAt``."""
    async with _matching(ctx, actor, query) as sources:
        pages = await asyncio.gather(*(
            _page(ctx, source, query, 0, query.offset + query.limit)
            for source in sources
        ))  # fmt: skip
    merged = heapq.merge(*pages, key=lambda entry: -entry[1])
    ids = [_text(run_id) for run_id, _ in merged][query.offset : query.offset + query.limit]
    return await _load_all(ctx, ids)


async def find_stuck(ctx: BridgeContext, actor: Actor, query: RunQuery) -> list[LoadedRun]:
    """The runs matching ``query`` that are not COMPLETED and wait on nothing, newest
    first across the partitions (as the list without ``stuck``)."""
    statuses = [s for s in query.statuses or UNFINISHED if s in UNFINISHED]
    if not statuses:
        return []
    narrowed = dataclasses.replace(query, statuses=statuses)
    found: list[LoadedRun] = []
    skipped = 0
    async with (
        _matching(ctx, actor, narrowed) as sources,
        aclosing(_chunks(_newest_first(ctx, sources, query), _STUCK_PAGE)) as chunks,
    ):
        async for ids in chunks:
            for loaded in await _stuck_among(ctx, ids):
                if skipped < query.offset:
                    skipped += 1
                elif len(found) < query.limit:
                    found.append(loaded)
            if len(found) >= query.limit:
                break
    return found


async def _newest_first(
    ctx: BridgeContext, sources: Sequence[str], query: RunQuery
) -> AsyncGenerator[str]:
    """Every run id of ``sources`` (one per partition), merged newest first by
    ``createdAt``; each source is read a page at a time, as the merge needs it."""
    starts = [0] * len(sources)
    pages: list[list[tuple[object, float]]] = [[] for _ in sources]
    heap: list[tuple[float, int, int]] = []  # (-createdAt, source, index in its page)

    async def read(n: int) -> None:
        if sources[n].startswith(temp_key("")):  # a long scan outlives the scratch TTL
            await ctx.redis.expire(sources[n], _TEMP_TTL_SECONDS)
        pages[n] = await _page(ctx, sources[n], query, starts[n], _STUCK_PAGE)
        starts[n] += len(pages[n])
        if pages[n]:
            heapq.heappush(heap, (-pages[n][0][1], n, 0))

    for n in range(len(sources)):
        await read(n)
    while heap:
        _, n, i = heapq.heappop(heap)
        yield _text(pages[n][i][0])
        if i + 1 < len(pages[n]):
            heapq.heappush(heap, (-pages[n][i + 1][1], n, i + 1))
        else:
            await read(n)


async def _chunks(items: AsyncGenerator[str], size: int) -> AsyncGenerator[list[str]]:
    chunk: list[str] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _stuck_among(ctx: BridgeContext, run_ids: Sequence[str]) -> list[LoadedRun]:
    """Those of ``run_ids`` whose stored state is unfinished with an empty ``waitingOn``
    (their states in one round trip; workflows come from the store's cache)."""
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for run_id in run_ids:
            pipe.hget(keys.run(run_id, ctx.runs.tag_of(run_id)), "state")
        raws = await pipe.execute()
    stuck = []
    for raw in raws:
        state = load_state(raw) if raw is not None else None
        if state is None or state.is_completed:
            continue
        workflow = await ctx.workflows.get(state.workflow_identifier, state.workflow_version)
        if workflow is not None and not waits(state, Graph.of(workflow)):
            stuck.append(LoadedRun(state, workflow))
    return stuck


@asynccontextmanager
async def _matching(ctx: BridgeContext, actor: Actor, query: RunQuery) -> AsyncIterator[list[str]]:
    """Per inbox partition, the key of a sorted set of its runs matching ``query``'s
    filters (none: nothing matches); scratch sets made for them are dropped on exit."""
    groups = await _groups(ctx, actor, query)
    by_tag: dict[str, dict[str, float]] | None = None
    if query.run_identifiers:
        by_tag = await _scores(ctx, query.run_identifiers)
        if not by_tag:
            yield []
            return
    scratch = uuid.uuid4().hex
    tags = list(by_tag) if by_tag is not None else ctx.runs.tags()
    temps: list[str] = []
    sources: list[str] = []
    for tag in tags:
        # One pipeline per partition: its scratch keys carry its tag, so all of a
        # partition's keys are in one slot, on one node, in order. Not a MULTI: a list
        # is no snapshot, and redis-py's async cluster transactions run on another
        # thread's event loop, which fails.
        async with ctx.redis.pipeline(transaction=False) as pipe:
            mine: list[str] = []
            partition_groups = list(groups)
            if by_tag is not None:
                ids_key = temp_key(f"{tag}:{scratch}:ids")
                pipe.zadd(ids_key, by_tag[tag])
                partition_groups.append([_fixed(ids_key)])
                mine.append(ids_key)
            sources.append(_combine(pipe, partition_groups, tag, f"{tag}:{scratch}", mine))
            for temp in mine:
                pipe.expire(temp, _TEMP_TTL_SECONDS)
            await pipe.execute()
        temps += mine
    try:
        yield sources
    finally:
        if temps:  # one DEL each (several slots on a cluster), in one pipeline
            async with ctx.redis.pipeline(transaction=False) as pipe:
                for temp in temps:
                    pipe.delete(temp)
                await pipe.execute()


async def _scores(ctx: BridgeContext, run_ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """The ``createdAt`` scores of those of ``run_ids`` that exist, by partition tag."""
    tagged = [(ctx.runs.tag_of(run_id), run_id) for run_id in run_ids]
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for tag, run_id in tagged:
            pipe.zscore(keys.runs_all(tag), run_id)
        scores = await pipe.execute()
    found: dict[str, dict[str, float]] = {}
    for (tag, run_id), score in zip(tagged, scores, strict=True):
        if score is not None:
            found.setdefault(tag, {})[run_id] = score
    return found


def _combine(
    pipe: Pipeline, groups: list[list[Source]], tag: str, scratch: str, temps: list[str]
) -> str:
    """Queue ``tag``'s partition's unions and intersection; returns the key holding the
    result (``scratch`` names its scratch sets, each with the partition's tag)."""
    sources = []
    for index, group in enumerate(groups):
        keys_of = [_single(pipe, source, tag, f"{scratch}:{index}:{n}", temps)
                   for n, source in enumerate(group)]  # fmt: skip
        if len(keys_of) == 1:
            sources.append(keys_of[0])
            continue
        union = temp_key(f"{scratch}:{index}")
        pipe.zunionstore(union, keys_of, aggregate="MAX")
        temps.append(union)
        sources.append(union)
    if not sources:
        return keys.runs_all(tag)
    if len(sources) == 1:
        return sources[0]
    target = temp_key(scratch)
    pipe.zinterstore(target, sources, aggregate="MAX")
    temps.append(target)
    return target


def _single(pipe: Pipeline, source: Source, tag: str, scratch: str, temps: list[str]) -> str:
    """``source``'s key in ``tag``'s partition; an intersection is queued into a
    scratch set first."""
    if not isinstance(source, tuple):
        return source(tag)
    target = temp_key(scratch)
    pipe.zinterstore(target, [index(tag) for index in source], aggregate="MAX")
    temps.append(target)
    return target


async def _page(
    ctx: BridgeContext, source: str, query: RunQuery, start: int, num: int
) -> list[tuple[object, float]]:
    """``num`` run ids of ``source`` from ``start`` with their scores, newest first,
    within the ``createdAt`` bounds of ``query``."""
    high, low = query.page_bounds()
    found: Any
    if high == "+inf" and low == "-inf":
        found = await ctx.redis.zrevrange(source, start, start + num - 1, withscores=True)
    else:
        found = await ctx.redis.zrevrangebyscore(
            source, high, low, start=start, num=num, withscores=True
        )
    return [(member, float(score)) for member, score in found]


async def _load_all(ctx: BridgeContext, run_ids: Sequence[str]) -> list[LoadedRun]:
    found = []
    for run_id in run_ids:
        loaded = await load_run(ctx, run_id)
        if loaded is not None:
            found.append(loaded)
    return found


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
