"""``GET /v1/workflows/runs`` over the engine's index sorted sets, without a scan of runs.

Each filter is a union of index sets (``statuses=A&statuses=B`` → status:A or status:B);
the filters are intersected, in one MULTI, into a temporary sorted set that is read
newest first with ``offset``/``limit`` and then dropped. A Member's visibility is one
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

import dataclasses
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

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


# An index set, or the intersection of several (a workflow's runs of one version).
Source = str | tuple[str, ...]


async def _member_visible(ctx: BridgeContext, actor: Actor, query: RunQuery) -> list[Source]:
    """Index sets whose union is what a Member may see: their own runs, the runs of
    workflows that let anyone view them (their newest version says), and the runs of
    the versions whose INPUT nodes they answer. One round trip: each version's view
    facts are stored beside it (``WorkflowStore.view_facts``), nothing is parsed."""
    if query.workflow_identifiers:
        candidates = query.workflow_identifiers
    else:
        candidates = [_text(w) for w in await ctx.redis.zrange(keys.WORKFLOWS, 0, -1)]
    visible: list[Source] = [keys.runs_by(actor.name)]
    for workflow, versions in (await ctx.workflows.view_facts(candidates)).items():
        if versions[max(versions)].anyone:
            visible.append(keys.runs_of_workflow(workflow))
            continue
        visible += [
            (keys.runs_of_workflow(workflow), keys.runs_of_version(version))
            for version, facts in versions.items()
            if names(actor, facts.users, facts.roles, facts.teams)
        ]
    return visible


async def _groups(ctx: BridgeContext, actor: Actor, query: RunQuery) -> list[list[Source]]:
    """One list of index keys per filter: the union of each, intersected together."""
    pairs = (
        (query.workflow_identifiers, keys.runs_of_workflow),
        (query.created_by, keys.runs_by),
        (query.statuses, keys.runs_with_status),
        (query.results, keys.runs_with_result),
    )
    groups: list[list[Source]] = [
        [key(value) for value in values] for values, key in pairs if values
    ]
    if query.workflow_versions:
        groups.append([keys.runs_of_version(v) for v in query.workflow_versions])
    if query.entity is not None:
        groups.append([keys.runs_of_entity(*query.entity)])
    if not actor.is_privileged:
        groups.append(await _member_visible(ctx, actor, query))
    return groups


async def find_runs(ctx: BridgeContext, actor: Actor, query: RunQuery) -> list[LoadedRun]:
    async with _matching(ctx, actor, query) as source:
        return [] if source is None else await _read(ctx, source, query)


async def find_stuck(ctx: BridgeContext, actor: Actor, query: RunQuery) -> list[LoadedRun]:
    """The runs matching ``query`` that are not COMPLETED and wait on nothing."""
    statuses = [s for s in query.statuses or UNFINISHED if s in UNFINISHED]
    if not statuses:
        return []
    narrowed = dataclasses.replace(query, statuses=statuses)
    found: list[LoadedRun] = []
    skipped = 0
    async with _matching(ctx, actor, narrowed) as source:
        start = 0
        while source is not None and len(found) < query.limit:
            ids = await _page(ctx, source, query, start, _STUCK_PAGE)
            if not ids:
                break
            start += len(ids)
            if source.startswith(temp_key("")):  # a long scan outlives the scratch TTL
                await ctx.redis.expire(source, _TEMP_TTL_SECONDS)
            for loaded in await _stuck_among(ctx, [_text(i) for i in ids]):
                if skipped < query.offset:
                    skipped += 1
                elif len(found) < query.limit:
                    found.append(loaded)
    return found


async def _stuck_among(ctx: BridgeContext, run_ids: Sequence[str]) -> list[LoadedRun]:
    """Those of ``run_ids`` whose stored state is unfinished with an empty ``waitingOn``
    (their states in one round trip; workflows come from the store's cache)."""
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for run_id in run_ids:
            pipe.hget(keys.run(run_id), "state")
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
async def _matching(ctx: BridgeContext, actor: Actor, query: RunQuery) -> AsyncIterator[str | None]:
    """The key of a sorted set of the runs matching ``query``'s filters (None: nothing
    matches); scratch sets made for it are dropped on exit."""
    groups = await _groups(ctx, actor, query)
    members: dict[str, float] = {}
    if query.run_identifiers:
        scores = await ctx.redis.zmscore(keys.RUNS_ALL, query.run_identifiers)
        members = {
            run_id: score
            for run_id, score in zip(query.run_identifiers, scores, strict=True)
            if score is not None
        }
        if not members:
            yield None
            return
    tag = uuid.uuid4().hex
    temps: list[str] = []
    async with ctx.redis.pipeline(transaction=True) as pipe:
        if members:
            ids_key = temp_key(f"{tag}:ids")
            pipe.zadd(ids_key, members)
            groups.append([ids_key])
            temps.append(ids_key)
        source = _combine(pipe, groups, tag, temps)
        for temp in temps:
            pipe.expire(temp, _TEMP_TTL_SECONDS)
        await pipe.execute()
    try:
        yield source
    finally:
        if temps:
            await ctx.redis.delete(*temps)


def _combine(pipe: Pipeline, groups: list[list[Source]], tag: str, temps: list[str]) -> str:
    """Queue the unions and the intersection; returns the key holding the result."""
    sources = []
    for index, group in enumerate(groups):
        keys_of = [_single(pipe, source, f"{tag}:{index}:{n}", temps)
                   for n, source in enumerate(group)]  # fmt: skip
        if len(keys_of) == 1:
            sources.append(keys_of[0])
            continue
        union = temp_key(f"{tag}:{index}")
        pipe.zunionstore(union, keys_of, aggregate="MAX")
        temps.append(union)
        sources.append(union)
    if not sources:
        return keys.RUNS_ALL
    if len(sources) == 1:
        return sources[0]
    target = temp_key(tag)
    pipe.zinterstore(target, sources, aggregate="MAX")
    temps.append(target)
    return target


def _single(pipe: Pipeline, source: Source, tag: str, temps: list[str]) -> str:
    """``source``'s key; an intersection is queued into a scratch set first."""
    if isinstance(source, str):
        return source
    target = temp_key(tag)
    pipe.zinterstore(target, source, aggregate="MAX")
    temps.append(target)
    return target


async def _page(
    ctx: BridgeContext, source: str, query: RunQuery, start: int, num: int
) -> list[object]:
    """``num`` run ids of ``source`` from ``start``, newest first, within the
    ``createdAt`` bounds of ``query``."""
    high, low = query.page_bounds()
    if high == "+inf" and low == "-inf":
        return list(await ctx.redis.zrevrange(source, start, start + num - 1))
    return list(await ctx.redis.zrevrangebyscore(source, high, low, start=start, num=num))


async def _read(ctx: BridgeContext, source: str, query: RunQuery) -> list[LoadedRun]:
    ids = await _page(ctx, source, query, query.offset, query.limit)
    return await _load_all(ctx, [_text(i) for i in ids])


async def _load_all(ctx: BridgeContext, run_ids: Sequence[str]) -> list[LoadedRun]:
    found = []
    for run_id in run_ids:
        loaded = await load_run(ctx, run_id)
        if loaded is not None:
            found.append(loaded)
    return found


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
