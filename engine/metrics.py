"""The engine's metrics, and those of the timers, scheduler and trigger matcher.

Each recording helper returns at once when metrics are off
(``switchyard.topics.telemetry.metrics.enabled``). Label children are cached where a
helper runs per record or per transition. Gauges whose truth is in Redis or in a
consumer are set by refreshers at scrape time (:func:`watch`), never kept in memory.

Every metric, with its labels:

* ``switchyard_runs_started_total{workflow}``, ``switchyard_runs_completed_total{workflow,
  result}``, ``switchyard_run_duration_seconds{workflow,result}`` (createdAt → completedAt);
* ``switchyard_node_runs_started_total{node_type}``, ``switchyard_node_runs_completed_total{
  node_type,result}``, ``switchyard_node_run_duration_seconds{node_type,result}``,
  ``switchyard_node_runs_in_flight{node_type}`` (from ``sy:stats:node-runs-in-flight``);
* ``switchyard_inbox_lag_records{partition}``, ``switchyard_inbox_records_total{outcome}``,
  ``switchyard_engine_batch_records``, ``switchyard_engine_batch_seconds``,
  ``switchyard_engine_apply_seconds``, ``switchyard_outbox_publish_seconds``,
  ``switchyard_dead_letters_total{reason}`` (the letter's code);
* ``switchyard_template_eval_seconds`` (one render or evaluation),
  ``switchyard_template_sandbox_restarts_total{reason}`` (timeout, memory, crash,
  interrupted, start_failed, killed);
* ``switchyard_timers_fired_total{purpose}``, ``switchyard_timer_fire_delay_seconds``
  (due → fired), ``switchyard_timers_armed``;
* ``switchyard_schedule_ticks_total{workflow}``, ``switchyard_schedule_tick_delay_seconds``
  (tick → fired);
* ``switchyard_trigger_entity_events_total{outcome}`` (matched, none, refused,
  undecodable), ``switchyard_trigger_runs_started_total{workflow}``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from prometheus_client import Counter, Gauge, Histogram

from switchyard.engine.store import keys
from switchyard.topics.telemetry import metrics as telemetry
from switchyard.topics.telemetry.metrics import BATCH_BUCKETS, DURATION_BUCKETS

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from switchyard.engine.store.plan import ApplyPlan
    from switchyard.schemas import RunTriggered, TimerFired

log = logging.getLogger("switchyard.metrics")
M = TypeVar("M", Counter, Gauge, Histogram)

RUNS_STARTED = Counter("switchyard_runs_started_total", "Runs created.", ["workflow"])
RUNS_COMPLETED = Counter(
    "switchyard_runs_completed_total", "Runs finished, by result.", ["workflow", "result"]
)
RUN_DURATION = Histogram(
    "switchyard_run_duration_seconds", "From a run's createdAt to its completion.",
    ["workflow", "result"], buckets=DURATION_BUCKETS,
)  # fmt: skip
NODE_RUNS_STARTED = Counter(
    "switchyard_node_runs_started_total", "Node runs created (each attempt).", ["node_type"]
)
NODE_RUNS_COMPLETED = Counter(
    "switchyard_node_runs_completed_total", "Node runs finished, by result.",
    ["node_type", "result"],
)  # fmt: skip
NODE_RUN_DURATION = Histogram(
    "switchyard_node_run_duration_seconds", "From a node run's createdAt to its completion.",
    ["node_type", "result"], buckets=DURATION_BUCKETS,
)  # fmt: skip
NODE_RUNS_IN_FLIGHT = Gauge(
    "switchyard_node_runs_in_flight", "Node runs IN_PROGRESS, across every engine.",
    ["node_type"],
)  # fmt: skip
INBOX_LAG = Gauge(
    "switchyard_inbox_lag_records",
    "Records of an assigned inbox partition not yet committed by this engine.", ["partition"],
)  # fmt: skip
INBOX_RECORDS = Counter(
    "switchyard_inbox_records_total", "Inbox records handled, by outcome.", ["outcome"]
)
BATCH_RECORDS = Histogram(
    "switchyard_engine_batch_records", "Records per inbox batch.", buckets=BATCH_BUCKETS
)
BATCH_SECONDS = Histogram(
    "switchyard_engine_batch_seconds", "One inbox batch, decode to outbox cleared.",
    buckets=DURATION_BUCKETS,
)  # fmt: skip
APPLY_SECONDS = Histogram(
    "switchyard_engine_apply_seconds", "A batch's atomic Redis step.", buckets=DURATION_BUCKETS
)
PUBLISH_SECONDS = Histogram(
    "switchyard_outbox_publish_seconds", "Publishing a batch's outbox, to Kafka's acks.",
    buckets=DURATION_BUCKETS,
)  # fmt: skip
DEAD_LETTERS = Counter(
    "switchyard_dead_letters_total", "Dead letters sent, by their code.", ["reason"]
)
TEMPLATE_EVAL = Histogram(
    "switchyard_template_eval_seconds", "One template render or jq evaluation.",
    buckets=DURATION_BUCKETS,
)  # fmt: skip
SANDBOX_RESTARTS = Counter(
    "switchyard_template_sandbox_restarts_total", "jq sandbox workers replaced, by why.",
    ["reason"],
)  # fmt: skip
TIMERS_FIRED = Counter(
    "switchyard_timers_fired_total", "TimerFired events produced, by purpose.", ["purpose"]
)
TIMER_DELAY = Histogram(
    "switchyard_timer_fire_delay_seconds", "From a timer's due time to its firing.",
    buckets=DURATION_BUCKETS,
)  # fmt: skip
TIMERS_ARMED = Gauge("switchyard_timers_armed", "Timers armed (sy:timers:<partition>).")
SCHEDULE_TICKS = Counter(
    "switchyard_schedule_ticks_total", "Schedule ticks fired as runs.", ["workflow"]
)
SCHEDULE_DELAY = Histogram(
    "switchyard_schedule_tick_delay_seconds", "From a schedule tick to its firing.",
    buckets=DURATION_BUCKETS,
)  # fmt: skip
TRIGGER_EVENTS = Counter(
    "switchyard_trigger_entity_events_total", "Entity events matched, by outcome.", ["outcome"]
)
TRIGGER_RUNS = Counter(
    "switchyard_trigger_runs_started_total", "Runs started by entity events.", ["workflow"]
)


class _Children(Generic[M]):
    """A metric's children by label values, cached (``labels()`` takes a lock and
    builds a tuple each call). Not for metrics that are cleared."""

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._cache: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._cache.get(values)
        if child is None:
            child = self._cache[values] = self._metric.labels(*values)
        return child


_runs_started = _Children(RUNS_STARTED)
_runs_completed = _Children(RUNS_COMPLETED)
_run_duration = _Children(RUN_DURATION)
_node_started = _Children(NODE_RUNS_STARTED)
_node_completed = _Children(NODE_RUNS_COMPLETED)
_node_duration = _Children(NODE_RUN_DURATION)
_records = _Children(INBOX_RECORDS)
_letters = _Children(DEAD_LETTERS)
_timers_fired = _Children(TIMERS_FIRED)
_ticks = _Children(SCHEDULE_TICKS)
_trigger_events = _Children(TRIGGER_EVENTS)
_trigger_runs = _Children(TRIGGER_RUNS)


# --- the engine -----------------------------------------------------------------


def transitions_applied(plans: Sequence[ApplyPlan], replies: Sequence[int]) -> None:
    """Count what each applied plan (reply 1) started and finished: exactly once per
    applied transition, since a replayed plan is never applied again."""
    if not telemetry.enabled():
        return
    for plan, reply in zip(plans, replies, strict=True):
        facts = plan.facts
        if reply != 1 or facts is None:
            continue
        if facts.run_started:
            _runs_started(facts.workflow).inc()
        if facts.run_result is not None:
            _runs_completed(facts.workflow, facts.run_result).inc()
            _run_duration(facts.workflow, facts.run_result).observe(facts.run_seconds)
        for change in facts.node_runs:
            if change.started:
                _node_started(change.node_type).inc()
            if change.result is not None:
                _node_completed(change.node_type, change.result).inc()
                _node_duration(change.node_type, change.result).observe(change.seconds)


def batch_handled(
    outcomes: Sequence[str],
    letters: Mapping[int, str],
    started: float,
    applying: float,
    applied: float,
    published: float,
) -> None:
    """One inbox batch: its outcomes, the dead letters sent (``letters``: record index
    → code, counted where that record's outcome is a dead letter), and its timings
    (``time.perf_counter()`` at its start, before and after the Redis step, after the
    publish)."""
    if not telemetry.enabled():
        return
    now = time.perf_counter()
    BATCH_RECORDS.observe(len(outcomes))
    BATCH_SECONDS.observe(now - started)
    APPLY_SECONDS.observe(applied - applying)
    PUBLISH_SECONDS.observe(published - applied)
    for outcome in outcomes:
        _records(outcome).inc()
    for index, code in letters.items():
        if outcomes[index] == "dead_lettered":
            _letters(code).inc()


def dead_lettered(code: str, outcome: str | None = None) -> None:
    """A dead letter sent outside a batch's count (``handle_batch``'s last resort, a
    timer or entity event that can't be read); ``outcome`` also counts its record."""
    if not telemetry.enabled():
        return
    _letters(code).inc()
    if outcome is not None:
        _records(outcome).inc()


async def refresh_in_flight(redis: aioredis.Redis, tags: Sequence[str]) -> None:
    """Set the in-flight gauge from every engine's counts in Redis: each inbox
    partition (``tags``) keeps its own, summed here."""
    async with redis.pipeline(transaction=False) as pipe:
        for tag in tags:
            pipe.hgetall(keys.node_runs_in_flight(tag))
        replies = await pipe.execute()
    totals: dict[str, int] = {}
    for counts in replies:
        for kind, count in counts.items():
            totals[_text(kind)] = totals.get(_text(kind), 0) + int(count)
    NODE_RUNS_IN_FLIGHT.clear()
    for kind, total in totals.items():
        # Node runs in flight before the counts existed end without having been
        # counted: the sum can dip below the truth, never below zero.
        NODE_RUNS_IN_FLIGHT.labels(kind).set(max(0, total))


class LagSource(Protocol):
    """What the lag refresher needs of a consumer (aiokafka's, or faust's)."""

    def assignment(self) -> Iterable[Any]: ...

    def highwater(self, tp: Any) -> int | None: ...

    async def position(self, tp: Any) -> int | None: ...


async def refresh_inbox_lag(
    consumer: LagSource, committed: Mapping[Any, int] | None = None
) -> None:
    """Set the lag of each assigned partition: highwater minus the offset committed (as
    the driver last committed it, else the consumer's position)."""
    INBOX_LAG.clear()
    for tp in list(consumer.assignment()):
        try:
            highwater = consumer.highwater(tp)
            done = (committed or {}).get(tp)
            if done is None:
                done = await asyncio.wait_for(consumer.position(tp), 0.5)
        except Exception:  # a partition moving away meanwhile: shown next scrape
            continue
        if highwater is not None and done is not None:
            INBOX_LAG.labels(str(tp.partition)).set(max(0, highwater - done))


# --- templates ------------------------------------------------------------------


def template_evaluated(started: float) -> None:
    """One render or evaluation that began at ``started`` (``time.perf_counter()``)."""
    if telemetry.enabled():
        TEMPLATE_EVAL.observe(time.perf_counter() - started)


def sandbox_restarted(reason: str) -> None:
    if telemetry.enabled():
        SANDBOX_RESTARTS.labels(reason).inc()


# --- timers, scheduler, trigger matcher ----------------------------------------------


def timers_fired(events: Iterable[TimerFired], fired_at: datetime) -> None:
    if not telemetry.enabled():
        return
    for event in events:
        _timers_fired(event.purpose or "unknown").inc()
        if event.due_at is not None:
            TIMER_DELAY.observe(max(0.0, (fired_at - event.due_at).total_seconds()))


async def refresh_timers_armed(redis: aioredis.Redis, tags: Sequence[str]) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for tag in tags:
            pipe.zcard(keys.timers(tag))
        TIMERS_ARMED.set(sum(await pipe.execute()))


def tick_fired(workflow: str, tick: datetime, fired_at: datetime) -> None:
    if telemetry.enabled():
        _ticks(workflow).inc()
        SCHEDULE_DELAY.observe(max(0.0, (fired_at - tick).total_seconds()))


def entity_event_matched(outcome: str) -> None:
    """``outcome``: matched (a run started), none (no trigger matched), refused (a
    trigger matched but its condition or the chain depth refused), undecodable."""
    if telemetry.enabled():
        _trigger_events(outcome).inc()


def trigger_runs_started(triggers: Iterable[RunTriggered]) -> None:
    if telemetry.enabled():
        for trigger in triggers:
            _trigger_runs(trigger.workflow_identifier).inc()


# --- refreshers -------------------------------------------------------------------

_watched: dict[str, Callable[[], Awaitable[None]]] = {}


async def _refresh_watched() -> None:
    if not telemetry.enabled():  # metrics off: nothing read, nothing shown
        return
    for name, refresh in list(_watched.items()):
        try:
            await refresh()
        except Exception as error:  # the scrape shows the rest
            log.warning("metrics: refreshing %s failed: %r", name, error)


def watch(name: str, refresh: Callable[[], Awaitable[None]]) -> None:
    """Refresh gauges with ``refresh`` at each scrape, under ``name``: a service that
    starts again (or a second one in a test) replaces its refresher, never adds one."""
    _watched[name] = refresh
    if _refresh_watched not in telemetry.refreshers():
        telemetry.add_refresher(_refresh_watched)


def unwatch(name: str, refresh: Callable[[], Awaitable[None]] | None = None) -> None:
    """Stop refreshing ``name`` (only if it is still ``refresh``, when given)."""
    if refresh is None or _watched.get(name) == refresh:
        _watched.pop(name, None)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
