"""The timer service: armed timers in Redis become ``TimerFired`` inbox events when due.

The engine arms and disarms timers in its atomic apply step (``engine/store/plan.py``:
``sy:timers`` scored by due time, ``sy:timers:details``); this service only takes the
due ones, produces one ``TimerFired`` each to the inbox, keyed by its run (so it lands
in the run's partition, behind the run's other events), and forgets a timer only once
Kafka has acknowledged its firing, and only if it is still armed for the time fired.

Firing is at-least-once: a crash between the produce and the forget fires again, and
several instances may run at once (each fires what it sees). Applying is exactly-once:
the machine ignores a timer that no longer matches the run (fired twice, or after what
it was for is over). While Redis or Kafka is away the loop retries with backoff; a
timer stays armed until its firing is acknowledged, so nothing is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources

import orjson
import redis.asyncio as aioredis
from pydantic import ValidationError

from switchyard.engine import metrics
from switchyard.engine.store import keys
from switchyard.engine.store.calls import side_by_side
from switchyard.engine.store.slots import partition_tag
from switchyard.schemas import TimerFired, encode
from switchyard.schemas.settings import Settings
from switchyard.topics.dead_letter import DeadLetter
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from switchyard.topics.telemetry.log_context import log_context

log = logging.getLogger("switchyard.timers")

_FIRST_BACKOFF_S = 0.1
_MAX_BACKOFF_S = 5.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


def _lua(name: str) -> str:
    return resources.files("switchyard.engine.store").joinpath("lua", name).read_text()


def _ms(value: datetime) -> float:
    return (value - _EPOCH) / _MS


@dataclass(frozen=True)
class DueTimer:
    """A timer as the set holds it: ``score`` its due time (ms), ``details`` the JSON
    its ``TimerFired`` is made from (None if missing: never written by the engine)."""

    timer_id: str
    score: int
    details: bytes | None
    tag: str = ""  # the hash tag of the inbox partition whose set holds it


@dataclass
class TimerCounts:
    """What this service has done since it started (for logs and the benchmark).

    ``lateness_ms`` keeps the most recent firings' ``fired_at - due`` (bounded).
    """

    fired: int = 0
    forgotten: int = 0
    superseded: int = 0  # fired, but re-armed or cancelled meanwhile: left armed as it is
    dead_lettered: int = 0
    failures: int = 0
    max_lateness_ms: float = 0.0
    lateness_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))


class TimerService:
    """Fires due timers until stopped; shares the caller's Redis client and producer.

    Lifecycle: ``start()`` once (a second start is an error), ``stop()`` is idempotent:
    it finishes the batch in hand (produce, then forget) and returns.
    """

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        producer: EventProducer,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        registry = TopicRegistry.from_settings(settings)
        self.inbox = registry.inbox.name
        self.dead_letter = registry.dead_letter.name
        self.counts = TimerCounts()
        self._redis = redis
        self._producer = producer
        self._clock = clock
        self._batch = settings.timer_batch_max
        # Each inbox partition keeps its runs' timers (keys.timers): one read each.
        self._tags = [
            partition_tag(p, settings.inbox_partitions) for p in range(settings.inbox_partitions)
        ]
        self._max_sleep = settings.timer_max_sleep_s
        self._due = redis.register_script(_lua("due_timers.lua"))
        self._forget = redis.register_script(_lua("forget_fired_timers.lua"))
        self._wake = asyncio.Event()
        # When the loop means to look next (ms): a wake-up for a later timer is ignored.
        self._next_look_ms = float("inf")
        self._state = "new"
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"TimerService.start() called when {self._state}")
        self._state = "started"
        metrics.watch("timers_armed", self._refresh_armed)
        self._tasks = [
            asyncio.create_task(self._listen(), name="timers-wake"),
            asyncio.create_task(self._run(), name="timers-loop"),
        ]

    async def stop(self) -> None:
        if self._state == "new":
            self._state = "stopped"
        if self._state == "stopped":
            return
        if self._state == "started":
            self._state = "stopping"
            self._wake.set()
            self._tasks[0].cancel()  # the wake-up listener; the loop ends its batch
        # Cancelled itself (a grace period ran out), this cancels the loop: what it had
        # not forgotten stays armed and fires after a restart.
        ended = await asyncio.gather(*self._tasks, return_exceptions=True)
        for outcome in ended:
            if isinstance(outcome, Exception):
                log.error("timers: %r on the way out", outcome)
        metrics.unwatch("timers_armed", self._refresh_armed)
        if self._state != "stopped":
            self._state = "stopped"
            counts = self.counts
            log.info(
                "timers stopped: %d fired, %d forgotten, %d superseded, %d dead-lettered",
                counts.fired, counts.forgotten, counts.superseded, counts.dead_lettered,
            )  # fmt: skip

    async def __aenter__(self) -> TimerService:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def running(self) -> bool:
        """Started and not yet asked to stop."""
        return self._state == "started"

    async def _refresh_armed(self) -> None:
        await metrics.refresh_timers_armed(self._redis, self._tags)

    async def _run(self) -> None:
        backoff = _FIRST_BACKOFF_S
        while self.running():
            self._wake.clear()
            try:
                pause = await self.fire_due()
                backoff = _FIRST_BACKOFF_S
            except Exception as error:
                if not self.running():
                    break  # what was not forgotten stays armed and fires after a restart
                self.counts.failures += 1
                log.warning("timers: firing failed (%r); retrying in %.1f s", error, backoff)
                pause, backoff = backoff, min(backoff * 2, _MAX_BACKOFF_S)
            if pause > 0 and self.running():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)

    async def fire_due(self) -> float:
        """Fire one batch of due timers; returns how long to sleep before looking again
        (0 when more are due)."""
        # Awake: any wake-up from now on means "look again" (the read below may or may
        # not have seen the timer it announces).
        self._next_look_ms = float("inf")
        now_ms = int(_ms(self._clock()))
        # Side by side (a cluster pipeline loads no scripts), one per partition's set.
        replies = await side_by_side(
            self._due(keys=[keys.timers(tag), keys.timer_details(tag)], args=[now_ms, self._batch])
            for tag in self._tags
        )
        after: int | None = None
        due: list[DueTimer] = []
        for tag, reply in zip(self._tags, replies, strict=True):
            next_one, found = _parse_due(reply, tag)
            due += found
            if next_one is not None:
                after = next_one if after is None else min(after, next_one)
        if due:
            await self._fire(due)
        if after is not None and after <= now_ms:
            return 0.0
        pause = self._max_sleep if after is None else min(self._max_sleep, (after - now_ms) / 1000)
        self._next_look_ms = now_ms + pause * 1000
        return pause

    async def _fire(self, due: Sequence[DueTimer]) -> None:
        """Produce every firing, wait for Kafka's acks, then forget what is unchanged."""
        fired_at = self._clock()
        futures = []
        fired: list[TimerFired] = []
        for timer in due:
            with log_context(timer_id=timer.timer_id, event_type="TimerFired"):
                event = self._event(timer, fired_at)
            if isinstance(event, TimerFired):
                future = await self._producer.send(self.inbox, event.run_id, encode(event))
                fired.append(event)
            else:
                future = await self._producer.send(self.dead_letter, timer.timer_id, event)
            futures.append(future)
        await self._producer.flush_sent(futures)
        metrics.timers_fired(fired, fired_at)
        for _ in range(len(due) - len(fired)):
            metrics.dead_lettered("timer_unreadable")
        by_tag: dict[str, list[str | int]] = {}
        for timer in due:
            by_tag.setdefault(timer.tag, []).extend((timer.timer_id, timer.score))
        forgotten = 0
        for tag, args in by_tag.items():
            keys_ = [keys.timers(tag), keys.timer_details(tag)]
            forgotten += int(await self._forget(keys=keys_, args=args))
        counts = self.counts
        counts.forgotten += forgotten
        counts.superseded += len(due) - forgotten
        late = [_ms(fired_at) - timer.score for timer in due if timer.details is not None]
        counts.lateness_ms.extend(late)
        counts.max_lateness_ms = max(counts.max_lateness_ms, *late, 0.0)
        log.debug("timers: fired %d, forgot %d", len(due), forgotten)

    def _event(self, timer: DueTimer, fired_at: datetime) -> TimerFired | bytes:
        """The timer's ``TimerFired``, or a dead letter when its details can't make one."""
        try:
            if timer.details is None:
                raise ValueError("the timer has no details in " + keys.timer_details(timer.tag))
            details = orjson.loads(timer.details)
            event = TimerFired.model_validate({**details, "timerId": timer.timer_id,
                                               "firedAt": fired_at})  # fmt: skip
        except (ValueError, TypeError, ValidationError) as error:
            self.counts.dead_lettered += 1
            log.error("timer %s can't be fired: %s", timer.timer_id, error,
                      extra={"timer_id": timer.timer_id, "topic": self.dead_letter})  # fmt: skip
            return DeadLetter.of(
                code="timer_unreadable", reason=f"timer {timer.timer_id}: {error}",
                topic=keys.timers(timer.tag), partition=-1, offset=timer.score,
                key=timer.timer_id.encode(), value=timer.details, at=fired_at,
            ).encode()  # fmt: skip
        self.counts.fired += 1
        log.debug(
            "timer %s fired for %s", timer.timer_id, event.run_id,
            extra={"run_id": event.run_id, "node_run_id": event.node_run_id,
                   "timer_id": timer.timer_id, "event_type": "TimerFired", "topic": self.inbox},
        )  # fmt: skip
        return event

    async def _listen(self) -> None:
        """Wake the loop when the engine arms a timer due before the loop's next look.

        Losing this subscription (Redis away) costs only latency: the loop never
        sleeps longer than ``timer_max_sleep_s``.
        """
        pubsub = self._redis.pubsub()
        backoff = _FIRST_BACKOFF_S
        try:
            # Checked, not only cancelled: redis-py's read timeout can swallow a
            # cancellation that lands as it expires (then this ends within one read).
            while self.running():
                try:
                    if not pubsub.subscribed:
                        # A cluster client needs its slot map to route SUBSCRIBE.
                        await self._redis.initialize()
                        await pubsub.subscribe(keys.TIMERS_WAKE)
                        # Timers armed before the subscription took hold: look again.
                        self._wake.set()
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=self._max_sleep
                    )
                    backoff = _FIRST_BACKOFF_S
                except Exception as error:
                    log.warning("timers: wake-up channel failed (%r); retrying in %.1f s",
                                error, backoff)  # fmt: skip
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF_S)
                    continue
                if message is not None and _wake_ms(message.get("data")) < self._next_look_ms:
                    self._wake.set()
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


def _wake_ms(data: object) -> float:
    try:
        return float(data)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("-inf")  # not ours to read: look anyway


def _parse_due(reply: list[object], tag: str) -> tuple[int | None, list[DueTimer]]:
    """``due_timers.lua``'s reply for ``tag``'s partition: the next score after the
    batch, and the batch."""
    after = None if reply[0] is None else int(float(_text(reply[0])))
    due = [
        DueTimer(
            timer_id=_text(reply[i]),
            score=int(float(_text(reply[i + 1]))),
            details=_raw(reply[i + 2]),
            tag=tag,
        )
        for i in range(1, len(reply), 3)
    ]
    return after, due


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _raw(value: object) -> bytes | None:
    if value is None:
        return None
    return value if isinstance(value, bytes) else str(value).encode()
