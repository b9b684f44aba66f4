"""Live run events as Server-Sent Events: one run's, and every visible run's.

``GET /v1/workflows/runs/{wfr}/stream`` sends the run's events in ``seq`` order,
each as ``id: <seq>`` + ``data: <RunEvent JSON>``, from the first (or after
``Last-Event-ID``) to ``run.completed``, then ``event: end`` and closes.
``GET /v1/workflows/runs/stream`` sends, with the list's filters, the events of every
run the caller may see, ``id:`` an opaque cursor; it never ends. Both send a
``: keep-alive`` comment every ``stream_heartbeat_seconds``.

Why Redis, written by the apply step, not the run-events topic: the engine RPUSHes
each event to the run's list ``sy:run:{p…}:<run>:events`` (index ``seq - 1``) and XADDs
a step's events as one entry of its inbox partition's capped stream
``sy:runs:events:{p…}``, in the same Lua call that stores the state emitting them
(:func:`switchyard.engine.store.plan.event_stream_commands`). So
both hold exactly the events of the stored state, in ``seq`` order, each once; the
topic gets them later from the outbox relay, which may repeat a step's messages after
a crash, and one run's history would need a scan of its partition. Reads block, never
poll: every stream of a bridge, list or per-run, is woken by the bridge's one
``XREAD BLOCK`` loop (:mod:`~switchyard.bridge.run_waker`; one per partition on a
Redis Cluster), then reads the partitions' streams after its cursor, or the run's list
(a list because a stream key costs ~4.7 kB however few its entries: every unfinished
run holds one). A bridge holds nothing but the client's position, which the client
has too (its last ``id:``), so any number of bridges serve any stream, and a client
that reconnects to another bridge, or to one restarted, resumes with
``Last-Event-ID``: the per-run stream by ``seq``, the list stream by a vector of entry
ids, one per partition's stream (and the event's index in that entry, but for an
entry's last event), good while each entry is within its stream's cap (about
``runs_events_cap`` steps of the partition's runs; an older cursor is a 409, so the
client reloads the list and reconnects without it).
Both hold each event packed (:mod:`~switchyard.engine.store.event_record`, ~100 B
instead of ~200): the streams send the topic's exact JSON rebuilt from it.
A completed run's list expires ``RUN_EVENTS_TTL_SECONDS`` (60 s) after
``run.completed`` (its memory is the price of each run's history, ~120 B an event,
so it is held only while a dropped watcher may still reconnect); after that the run's
stream sends ``event: end`` at once, and ``GET`` of the run has everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import StreamingResponse
from redis.exceptions import ResponseError

from switchyard.bridge.auth import Ctx, CurrentActor
from switchyard.bridge.context import BridgeContext
from switchyard.bridge.credentials import Actor
from switchyard.bridge.errors import conflict, invalid
from switchyard.bridge.models import ERRORS
from switchyard.bridge.run_filters import epoch_ms, run_filters
from switchyard.bridge.run_index import RunQuery
from switchyard.bridge.runs import RunIdPath
from switchyard.bridge.views import can_view, visible_run
from switchyard.engine.machine.state import RunState
from switchyard.engine.store import event_record, keys

router = APIRouter(tags=["runs"])

KEEP_ALIVE = b": keep-alive\n\n"
END = b"event: end\ndata: {}\n\n"
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_BATCH = 200
# One XREAD blocks at most this long, well inside the Redis client's socket timeout
# (5 s by default): an idle stream re-issues its blocking read, it never polls data.
_BLOCK_CAP_SECONDS = 2.0
# Runs whose visibility and fixed filters a list stream remembers (per connection).
_ADMISSION_CACHE = 10_000
# An entry id (after that entry), or an entry id and an event's index in it (after that
# event): an entry holds a step's events, and only its last one is sent with the
# entry's own id.
_POSITION = re.compile(r"^(\d{1,20})(?:-(\d{1,20})(?:-(\d{1,6}))?)?$")
_SSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events."}
}
LastEventId = Annotated[
    str | None,
    # A list stream's cursor holds a position per inbox partition (~16 characters each).
    Header(alias="Last-Event-ID", max_length=8192, description="Resume after this event id."),
]


def message(event_id: str, data: bytes) -> bytes:
    return b"id: " + event_id.encode() + b"\ndata: " + data + b"\n\n"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _Feed:
    """Reads of the inbox partitions' run-event streams after the last entries read,
    woken by the bridge's :class:`~switchyard.bridge.run_waker.RunWaker` (one blocking
    read per bridge, not one per client: a client holds no Redis connection while it
    waits, and on a Redis Cluster no XREAD spans the partitions' slots), with a
    heartbeat every ``beat`` seconds. :meth:`close` it when done."""

    def __init__(self, ctx: BridgeContext, keys_: list[str], after: list[str]) -> None:
        self._ctx = ctx
        self._keys = keys_
        self.last = list(after)
        self._beat = ctx.settings.stream_heartbeat_seconds
        self._loop = asyncio.get_running_loop()
        self._next_beat = self._loop.time() + self._beat
        self._waiter = ctx.waker.watch_any()

    def close(self) -> None:
        self._ctx.waker.forget_any(self._waiter)

    async def read(self) -> list[tuple[int, str, dict[bytes, bytes]]] | None:
        """The entries after the last ones read, as (partition, entry id, fields) (none
        when nothing came before the wait ended), or None when a heartbeat is due."""
        wait = self._next_beat - self._loop.time()
        if wait <= 0:
            self._next_beat = self._loop.time() + self._beat
            return None
        self._waiter.clear()  # before the read: an entry added after it wakes the wait
        entries = await self._read_now()
        if not entries:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._waiter.wait(), min(wait, _BLOCK_CAP_SECONDS))
        return entries

    async def _read_now(self) -> list[tuple[int, str, dict[bytes, bytes]]]:
        # One XREAD per partition's stream (each in its own slot on a cluster), all in
        # one round trip (one per node on a cluster).
        async with self._ctx.redis.pipeline(transaction=False) as pipe:
            for key, last in zip(self._keys, self.last, strict=True):
                pipe.xread({key: last}, count=_BATCH)
            replies: list[Any] = await pipe.execute()
        entries: list[tuple[int, str, dict[bytes, bytes]]] = []
        for partition, reply in enumerate(replies):
            for _, batch in reply or []:
                for entry_id, fields in batch:
                    entries.append((partition, _text(entry_id), fields))
                if batch:
                    self.last[partition] = _text(batch[-1][0])
        return entries


@router.get(
    "/v1/workflows/runs/{run_id}/stream",
    summary="Stream a run's events (SSE)",
    description="Server-Sent Events: every event of the run so far (after `Last-Event-ID`, "
    "a seq, when given), then live ones, in seq order, each `id: <seq>` + `data: <RunEvent "
    "JSON as on the run-events topic>`; `: keep-alive` comments every 15 s; after "
    "`run.completed`, one `event: end` with `data: {}` and the response closes. 404 for a "
    "run that is missing or not visible, 422 for a malformed id or Last-Event-ID.",
    response_class=StreamingResponse,
    responses={**_SSE, **ERRORS},
)
async def stream_run(
    run_id: RunIdPath, ctx: Ctx, actor: CurrentActor, last_event_id: LastEventId = None
) -> StreamingResponse:
    after = _seq(last_event_id)
    state = (await visible_run(ctx, actor, run_id)).state
    if after > state.seq:
        raise invalid(
            f"header Last-Event-ID: run {run_id} has {state.seq} events so far (got {after})"
        )
    return _sse(_run_events(ctx, state, after))


def _seq(raw: str | None) -> int:
    if raw is None or raw.strip() == "":
        return 0
    value = raw.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise invalid(f"header Last-Event-ID: must be an event seq, a whole number (got {raw!r})")
    return int(value)


def _sse(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers=_HEADERS)


async def _run_events(ctx: BridgeContext, state: RunState, after: int) -> AsyncIterator[bytes]:
    """The run's list from index ``after`` (= seq ``after + 1``), woken by the bridge's
    :class:`~switchyard.bridge.run_waker.RunWaker`; registered before each read, so an
    event stored after a read always wakes the next."""
    key = keys.run_events(state.run_id, ctx.runs.tag_of(state.run_id))
    if state.is_completed and after >= state.seq:
        yield END  # nothing more will come
        return
    waiter = ctx.waker.watch(state.run_id)
    loop = asyncio.get_running_loop()
    beat = ctx.settings.stream_heartbeat_seconds
    next_beat = loop.time() + beat
    sent = after
    try:
        while True:
            waiter.clear()
            raws: Any = await ctx.redis.lrange(key, sent, -1)
            for raw in raws:
                event = event_record.unpack(state.run_id, raw)
                sent += 1
                yield message(str(event.seq or sent), event.json)
                if event.kind == "run.completed":
                    yield END
                    return
            if not raws and await _expired(ctx, state.run_id, key):
                yield END  # completed, and its list expired (retention)
                return
            wait = next_beat - loop.time()
            if wait <= 0:
                yield KEEP_ALIVE
                next_beat = loop.time() + beat
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), wait)
    finally:
        ctx.waker.forget(state.run_id, waiter)


async def _expired(ctx: BridgeContext, run_id: str, key: str) -> bool:
    """Whether the run is completed and its list gone (nothing will wake us again)."""
    if await ctx.redis.exists(key):
        return False
    state = await ctx.runs.get(run_id)
    return state is None or state.is_completed


@router.get(
    "/v1/workflows/runs/stream",
    summary="Stream the events of every visible run (SSE)",
    description="Server-Sent Events of every run event of the runs the caller may see and "
    "the list filters admit (the filters of `GET /v1/workflows/runs`; `statuses`/`results` "
    "match the run's status and result when the event is sent), live, each `id: <cursor>` "
    "(opaque) + `data: <RunEvent JSON>`. `Last-Event-ID: <cursor>` resumes after it without "
    "a gap or a duplicate while the cursor is within the stream's retention (the last "
    "~30,000 steps, ~100,000 events, of all runs); an older or unknown cursor is a 409: "
    "reload the list and reconnect without it. `: keep-alive` every 15 s; it never ends on "
    "its own.",
    response_class=StreamingResponse,
    responses={**_SSE, **ERRORS},
)
async def stream_runs(
    ctx: Ctx,
    actor: CurrentActor,
    filters: Annotated[RunQuery, Depends(run_filters)],
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    start = await _start_cursor(ctx, last_event_id)
    return _sse(_all_events(ctx, _Admission(ctx, actor, filters), start))


def _cursor(raw: str, partitions: int) -> list[tuple[int, int, int | None]]:
    """A list stream's cursor: one position per inbox partition, in partition order,
    joined by ``.``: an entry id (after that entry), or an entry id and an event's
    index in it (after that event); ``0`` for before the first entry."""
    parts = raw.strip().split(".")
    found = [_POSITION.match(part) for part in parts]
    if len(parts) != partitions or any(match is None for match in found):
        raise invalid(
            "header Last-Event-ID: must be a cursor this stream sent, such as "
            f"{'.'.join(['1764633600000-0'] * min(partitions, 2))}… (got {raw!r})"
        )
    return [
        (int(m[1]), int(m[2] or 0), None if m[3] is None else int(m[3]))
        for m in found
        if m is not None
    ]


def cursor_text(positions: list[tuple[int, int, int | None]]) -> str:
    """The ``id:`` of a list-stream event: every partition's position (see _cursor)."""
    return ".".join(
        "0" if (high, low, index) == (0, 0, None)
        else f"{high}-{low}" if index is None else f"{high}-{low}-{index}"
        for high, low, index in positions
    )  # fmt: skip


def _as_cursor(value: Any) -> tuple[int, int]:
    high, _, low = _text(value).partition("-")
    return int(high), int(low or 0)


async def _start_cursor(ctx: BridgeContext, raw: str | None) -> list[tuple[int, int, int | None]]:
    """Where a list stream starts reading in each inbox partition's stream: after
    ``raw``'s positions if each is still within its stream's retention (else a 409),
    or after each newest entry when no cursor."""
    tags = ctx.runs.tags()
    given = _cursor(raw, len(tags)) if raw is not None and raw.strip() else None
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for tag in tags:
            pipe.xinfo_stream(keys.runs_events(tag))
        infos = await pipe.execute(raise_on_error=False)
    start: list[tuple[int, int, int | None]] = []
    for index, info in enumerate(infos):
        if isinstance(info, ResponseError):  # no event yet: all to come is after any cursor
            start.append((0, 0, None))
            continue
        newest = _as_cursor(info.get("last-generated-id") or "0-0")
        if given is None:
            start.append((*newest, None))
            continue
        position = given[index]
        # The cap trims from the oldest end: every event after a cursor at or past the
        # oldest kept one is still there. Nothing trimmed yet: every cursor is good.
        first = info.get("first-entry")
        trimmed = int(info.get("entries-added") or 0) > int(info.get("length") or 0)
        oldest = _as_cursor(first[0]) if trimmed and first else (0, 0)
        if position[:2] < oldest or position[:2] > newest:
            why = "is older than the stream's retention" if position[:2] < newest else "is unknown"
            kept = keys.runs_events_cap(len(tags))
            raise conflict(
                f"header Last-Event-ID: cursor {why} (about {kept} steps "
                "of each inbox partition's runs are kept); reload the runs and reconnect "
                "without Last-Event-ID"
            )
        start.append(position)
    return start


class _Admission:
    """Whether a run's events go to one list stream: visibility (SPEC §6) and the
    filters fixed at creation are remembered per run; ``statuses``/``results`` are
    checked against the run's stored state each time."""

    def __init__(self, ctx: BridgeContext, actor: Actor, query: RunQuery) -> None:
        self._ctx = ctx
        self._actor = actor
        self._query = query
        self._fixed: OrderedDict[str, bool] = OrderedDict()

    async def admits(self, run_id: str) -> bool:
        fixed = self._fixed.get(run_id)
        query = self._query
        if fixed is False:
            return False
        if fixed is True and not (query.statuses or query.results):
            return True
        state = await self._ctx.runs.get(run_id)
        if state is None:
            return False
        if fixed is None:
            fixed = await self._fixed_match(state)
            self._fixed[run_id] = fixed
            if len(self._fixed) > _ADMISSION_CACHE:
                self._fixed.popitem(last=False)
        if query.statuses and state.status not in query.statuses:
            return False
        if query.results and state.result not in query.results:
            return False
        return fixed

    async def _fixed_match(self, state: RunState) -> bool:
        query = self._query
        created = epoch_ms(state.created_at)
        checks = (
            (query.workflow_identifiers, state.workflow_identifier),
            (query.run_identifiers, state.run_id),
            (query.workflow_versions, state.workflow_version),
            (query.created_by, state.created_by),
        )
        if any(wanted and value not in wanted for wanted, value in checks):
            return False
        if query.created_after is not None and created < query.created_after:
            return False
        if query.created_before is not None and created > query.created_before:
            return False
        if query.entity is not None:
            index = keys.runs_of_entity(*query.entity, self._ctx.runs.tag_of(state.run_id))
            if await self._ctx.redis.zscore(index, state.run_id) is None:
                return False
        return bool(await can_view(self._ctx, self._actor, state))


async def _all_events(
    ctx: BridgeContext, admission: _Admission, start: list[tuple[int, int, int | None]]
) -> AsyncIterator[bytes]:
    """Every admitted event after the cursor ``start`` (one position per partition;
    a position inside an entry sends that entry's later events first)."""
    streams = [keys.runs_events(tag) for tag in ctx.runs.tags()]
    positions = list(start)
    for partition, (high, low, sent) in enumerate(start):
        if sent is not None:
            entry = f"{high}-{low}"
            rest: Any = await ctx.redis.xrange(streams[partition], min=entry, max=entry, count=1)
            for entry_id, fields in rest:
                async for chunk in _entry_events(
                    admission, positions, partition, _text(entry_id), fields, sent + 1
                ):
                    yield chunk
            positions[partition] = (high, low, None)
    feed = _Feed(ctx, streams, [f"{high}-{low}" for high, low, _ in positions])
    try:
        while True:
            entries = await feed.read()
            if entries is None:
                yield KEEP_ALIVE
                continue
            for partition, entry_id, fields in entries:
                async for chunk in _entry_events(
                    admission, positions, partition, entry_id, fields, 0
                ):
                    yield chunk
    finally:
        feed.close()


async def _entry_events(
    admission: _Admission,
    positions: list[tuple[int, int, int | None]],
    partition: int,
    entry_id: str,
    fields: dict[bytes, bytes],
    first: int,
) -> AsyncIterator[bytes]:
    """The events of one stream entry (a step's, of ``partition``'s stream) from index
    ``first``, if admitted; ``positions`` moves past each as it is sent: inside the
    entry for each but its last, past the entry for the last (a resume after it starts
    at the next entry)."""
    run_id = _text(fields[b"r"])
    high, low = _as_cursor(entry_id)
    positions[partition] = (high, low, None)
    events = event_record.unpack_step(run_id, fields[b"e"])
    if first >= len(events) or not await admission.admits(run_id):
        return
    last = len(events) - 1
    for index in range(first, len(events)):
        positions[partition] = (high, low, None if index == last else index)
        yield message(cursor_text(positions), events[index].json)
    positions[partition] = (high, low, None)
