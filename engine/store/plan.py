"""From a decision to one atomic Redis step: pure, so it is tested without Redis.

The plan is a list of Redis commands the apply script runs after checking the
inbox offset, plus the Kafka messages the step must publish (its outbox). Index
changes are derived from the old and new state, so a replayed event changes
nothing: the script refuses an offset at or below the one already applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from switchyard.engine.machine.effects import (
    AppendLogs,
    CancelTimer,
    ClearPendingClaim,
    Decision,
    EmitRunEvent,
    MarkPendingClaim,
    PublishAgentRequest,
    PublishAiRequest,
    PublishEntityRequest,
    PublishInboxEvent,
    PublishNodeRunRequest,
    PublishWebhookRequest,
    SetTimer,
)
from switchyard.engine.machine.state import RunState, dump_state
from switchyard.engine.store import event_record, keys, log_record
from switchyard.engine.store.run_entities import run_entities
from switchyard.engine.store.transitions import Transitions, in_flight_commands, transitions
from switchyard.schemas import NodeRunLog, RunEvent, Workflow, encode
from switchyard.schemas.timestamps import as_utc, format_timestamp
from switchyard.topics.agent_envelope import signed_envelope
from switchyard.topics.registry import TopicRegistry


@dataclass(frozen=True)
class OutboxMessage:
    """A Kafka message a step still has to publish.

    ``partition`` None: the key's murmur2 partition, which the producer sets itself.
    ``headers``: Kafka record headers (the trace context of the transition that made
    the message), kept in the outbox so a re-publish after a crash sends them too.
    """

    topic: str
    key: str
    value: bytes
    partition: int | None = None
    headers: tuple[tuple[str, bytes], ...] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"topic": self.topic, "key": self.key, "value": self.value.decode()}
        if self.partition is not None:
            data["partition"] = self.partition
        if self.headers:  # trace context: ASCII by the W3C format
            data["headers"] = [[name, value.decode("latin-1")] for name, value in self.headers]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutboxMessage:
        headers = data.get("headers")
        return cls(
            topic=data["topic"], key=data["key"], value=data["value"].encode(),
            partition=data.get("partition"),
            headers=tuple((n, v.encode("latin-1")) for n, v in headers) if headers else None,
        )  # fmt: skip


@dataclass
class ApplyPlan:
    """Everything one inbox event changes, applied by ``apply.lua`` all or nothing.

    ``partition`` and ``offset`` say where the event sat in the inbox; the script
    applies the plan only past the offset last applied from that partition, held in
    ``guard`` (the run's hash, or for a stray being moved, its partition's hash).
    """

    run_id: str
    offset: int
    step: str
    partition: int = 0
    commands: list[list[str]] = field(default_factory=list)
    outbox: list[OutboxMessage] = field(default_factory=list)
    guard: str | None = None
    # The hash tag of every key the plan writes: its inbox partition's (slots.py).
    # Required: an empty one would write untagged keys ("sy:run::wfr_…").
    tag: str = field(kw_only=True)
    # What the step starts and finishes, for the metrics of an applied plan.
    facts: Transitions | None = None
    # The trace context its messages carry (built with them: copying each one after
    # was a measurable share of a traced engine's CPU).
    headers: tuple[tuple[str, bytes], ...] | None = None

    def script_argument(self, names: dict[str, int]) -> bytes:
        """The plan as ``apply.lua`` takes it, each key given by its 1-based index in
        ``names`` (the call's KEYS, shared by the plans of one call; keys this plan
        adds are appended)."""

        def index(key: str) -> int:
            return names.setdefault(key, len(names) + 1)

        commands: list[list[str | int]] = [
            [c[0], *c[1:]] if c[0] == "PUBLISH" else [c[0], index(c[1]), *c[2:]]
            for c in self.commands
        ]
        if self.outbox:
            payload = orjson.dumps([m.to_json() for m in self.outbox]).decode()
            commands.append(["HSET", index(keys.outbox(self.run_id, self.tag)), self.step, payload])
            commands.append(["SADD", index(keys.outbox_pending(self.tag)), self.run_id])
        guard = index(self.guard or keys.run(self.run_id, self.tag))
        return orjson.dumps({
            "run": guard, "offset": str(self.offset),
            "partition": str(self.partition), "commands": commands,
            "proof": _proof(commands),
        })  # fmt: skip


def _proof(commands: list[list[str | int]]) -> int:
    """The 1-based index of the command whose write shows this very plan was applied:
    its state's HSET (the state holds its step, one more than the state it was decided
    from); 0 for a plan that writes no state (a rejection, a duplicate, a move, a dead
    letter of an unreadable record).

    A client that lost the connection after the script ran retries the call (redis-py
    does, and a Redis Cluster client does after a failover): the retry finds the
    offset applied, and must say 1, not "a redelivery", or the step's messages would
    wait in the outbox for the run's next event or the engine's restart. A true
    redelivery is decided again from the stored state, a later step: its proof differs.
    A plan without state can't tell its retry from a redelivery (both write the same),
    so it keeps the redelivery's 0: a redelivery must not publish its leftover again.
    """
    for number, command in enumerate(commands, start=1):
        if command[0] == "HSET" and command[2] == "state":
            return number
    return 0


def move_plan(
    run_id: str, topic: str, partition: int, offset: int, message: OutboxMessage, tag: str
) -> ApplyPlan:
    """Re-publish a stray inbox record (``partition``/``offset``) to its run's partition.

    Guarded by the stray partition's own offset, so a redelivered stray is not moved
    twice; the message rides the run's outbox, so a crash can't lose it.
    """
    return ApplyPlan(
        run_id=run_id, offset=offset, step=f"move:{partition}:{offset}", partition=partition,
        outbox=[message], guard=keys.strays(topic, tag), tag=tag,
    )  # fmt: skip


# The outbox an unreadable record's dead letter rides: such a record names no run.
UNREADABLE = "unreadable"


def letter_plan(
    topic: str, partition: int, offset: int, letter: OutboxMessage, tag: str
) -> ApplyPlan:
    """Dead-letter an inbox record that names no run (``partition``/``offset``).

    Guarded like a move, by the partition's own offset: a record redelivered after a
    crash between the publish and the commit is not dead-lettered a second time, with
    another ``at`` (a consumer of the topic would see two letters of one record). Its
    letter rides the partition's outbox, so a crash can't lose it either.
    """
    return ApplyPlan(
        run_id=UNREADABLE, offset=offset, step=f"letter:{partition}:{offset}",
        partition=partition, outbox=[letter], guard=keys.strays(topic, tag), tag=tag,
    )  # fmt: skip


def _ms(value: datetime) -> str:
    """Whole ms since the epoch, in integers (a float product can land 1 ms short, and
    ``createdAfter``/``createdBefore`` compare these scores to a run's ``createdAt``)."""
    return str((as_utc(value) - _EPOCH) // _MS)


def _index_commands(
    old: RunState | None, new: RunState, tag: str, workflow: Workflow | None = None
) -> list[list[str]]:
    score = _ms(new.created_at)
    commands: list[list[str]] = []
    if old is None:
        commands += [
            ["ZADD", keys.runs_all(tag), score, new.run_id],
            ["ZADD", keys.runs_of_workflow(new.workflow_identifier, tag), score, new.run_id],
            ["ZADD", keys.runs_by(new.created_by, tag), score, new.run_id],
            ["ZADD", keys.runs_of_version(new.workflow_version, tag), score, new.run_id],
        ]
        entities = run_entities(new, workflow) if workflow is not None else []
        commands += [
            ["ZADD", keys.runs_of_entity(bp, e, tag), score, new.run_id] for bp, e in entities
        ]
        commands.append(["PUBLISH", keys.NOTIFY_CHANNEL, new.run_id])
    if old is None or old.status != new.status:
        if old is not None:
            commands.append(["ZREM", keys.runs_with_status(old.status, tag), new.run_id])
        commands.append(["ZADD", keys.runs_with_status(new.status, tag), score, new.run_id])
        if new.completed_at is not None:  # by finish time: what the retention pruner takes
            commands.append(["ZADD", keys.runs_finished(tag), _ms(new.completed_at), new.run_id])
    if new.result is not None and (old is None or old.result != new.result):
        commands.append(["ZADD", keys.runs_with_result(new.result, tag), score, new.run_id])
    before = {nr.id: nr for nr in old.node_runs} if old else {}
    for nr in new.node_runs:
        if nr.id not in before:
            commands.append(["HSET", keys.node_runs_bucket(nr.id, tag), nr.id, new.run_id])
        previous = before.get(nr.id)
        external = nr.external_run_id
        if external and (previous is None or previous.external_run_id != external):
            # Written by the engine, so a NodeRunUpdated produced straight to Kafka
            # is found by GET /v1/workflows/nodes/runs?external_run_id= too.
            commands.append(["SET", keys.external_run(external, tag), nr.id])
    return commands


def log_line(node_run_id: str, entry: NodeRunLog) -> str:
    """One stored log line of ``node_run_id``, packed (:mod:`.log_record`)."""
    return log_record.pack(node_run_id, entry)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def plan_decision(
    old: RunState | None,
    decision: Decision,
    *,
    offset: int,
    registry: TopicRegistry,
    tag: str,
    partition: int = 0,
    agent_secret: str | None = None,
    workflow: Workflow | None = None,
    headers: tuple[tuple[str, bytes], ...] | None = None,
) -> ApplyPlan:
    """The plan of an accepted decision, or of a rejection of an event for a known run.

    ``workflow`` (the run's pinned version) names the entities a new run is associated
    with (:mod:`~switchyard.engine.store.run_entities`); without it none are recorded.

    A rejection's plan records the offset alone (the processor adds its dead letter to
    the outbox, so a crash can't lose the reason). Messages for Port's
    execution agent are signed here with ``agent_secret``: the outbox keeps the signed
    bytes, so a re-publish after a crash sends the same ones. Every message it makes
    carries ``headers`` (the trace context of the transition).
    """
    new = decision.state if decision.accepted else old
    if new is None:
        raise ValueError("a plan needs a run: reject events of unknown runs without one")
    step = f"{new.step}:{offset}"
    plan = ApplyPlan(
        run_id=new.run_id, offset=offset, step=step, partition=partition, tag=tag,
        headers=headers,
    )  # fmt: skip
    if not decision.accepted or decision.state is None:
        return plan
    plan.commands.append(["HSET", keys.run(new.run_id, tag), "state", dump_state(new).decode()])
    plan.commands += _index_commands(old, new, tag, workflow)
    plan.facts = transitions(old, new, workflow)
    if plan.facts is not None:
        plan.commands += in_flight_commands(plan.facts, tag)
    emitted: list[tuple[RunEvent, bytes]] = []
    for effect in decision.effects:
        if isinstance(effect, EmitRunEvent):
            value = encode(effect.event)
            plan.outbox.append(
                OutboxMessage(registry.run_events.name, new.run_id, value, None, headers)
            )
            emitted.append((effect.event, value))
        else:
            _plan_effect(plan, effect, registry, agent_secret)
    plan.commands += event_stream_commands(emitted, tag, registry.inbox.partitions)
    return plan


def _plan_effect(
    plan: ApplyPlan, effect: object, registry: TopicRegistry, agent_secret: str | None = None
) -> None:
    run_id, tag, headers = plan.run_id, plan.tag, plan.headers

    def message(topic: str, key: str, value: bytes) -> OutboxMessage:
        return OutboxMessage(topic, key, value, None, headers)

    if isinstance(effect, AppendLogs) and effect.entries:
        entries = [log_line(effect.node_run_id, entry) for entry in effect.entries]
        plan.commands.append(["RPUSH", keys.logs(run_id, tag), *entries])
    elif isinstance(effect, MarkPendingClaim):
        plan.commands += [
            ["HSET", keys.claim(effect.node_run_id, tag), "run", run_id,
             "installation", effect.installation_id, "config", _json(effect.config),
             *(["uid", effect.node_uid] if effect.node_uid else [])],
            ["ZADD", keys.claims(effect.installation_id, tag), "NX", "0", effect.node_run_id],
            ["SADD", keys.claimants(tag), effect.installation_id],
        ]  # fmt: skip
    elif isinstance(effect, ClearPendingClaim):
        plan.commands += [
            ["ZREM", keys.claims(effect.installation_id, tag), effect.node_run_id],
            ["DEL", keys.claim(effect.node_run_id, tag)],
        ]
    elif isinstance(effect, PublishNodeRunRequest):
        plan.outbox.append(message(registry.node_run_requests.name, run_id, encode(effect.request)))
    elif isinstance(effect, PublishAgentRequest):
        value = signed_envelope(effect.message, agent_secret, effect.timestamp)
        plan.outbox.append(message(registry.agent_runs.name, run_id, value))
    elif isinstance(effect, PublishAiRequest):
        plan.outbox.append(message(registry.ai_requests.name, run_id, encode(effect.request)))
    elif isinstance(effect, PublishEntityRequest):
        plan.outbox.append(message(registry.entity_requests.name, run_id, encode(effect.request)))
    elif isinstance(effect, PublishWebhookRequest):
        plan.outbox.append(message(registry.webhook_requests.name, run_id, encode(effect.request)))
    elif isinstance(effect, PublishInboxEvent):
        # Keyed by the other run: the producer puts it in that run's partition.
        event = effect.event
        plan.outbox.append(message(registry.inbox.name, event.run_id, encode(event)))
    elif isinstance(effect, SetTimer | CancelTimer):
        plan.commands += timer_commands(effect, tag)
    # RunFinished needs nothing more here: the status and result indexes follow the state.


def event_stream_commands(
    events: Sequence[tuple[RunEvent, bytes]], tag: str, partitions: int
) -> list[list[str]]:
    """A step's run events (each with its topic JSON) on the run's own list (index
    ``seq - 1``: the per-run SSE resumes by seq; a list, not a stream: a stream key
    costs ~4.7 kB however few its entries), one RPUSH, and as one entry of the capped
    stream of its partition's runs' events (the list SSE, and the bridges' wake-up of
    live streams), in the step that emits them, so both hold exactly the events the stored
    state has emitted. Each event is packed (:mod:`.event_record`: half the bytes, the
    topic's JSON given back by the bridge), and one entry per step, not per event (a
    chain run's 10 events are 3 entries), saves an entry's overhead and an XADD per
    event. The run's list expires a while after ``run.completed``, set in its step."""
    if not events:
        return []
    run_id = events[0][0].run_id
    packed = [event_record.pack(value) for _, value in events]
    own = keys.run_events(run_id, tag)
    commands = [
        ["RPUSH", own, *packed],
        ["XADD", keys.runs_events(tag), "MAXLEN", "~", str(keys.runs_events_cap(partitions)), "*",
         "r", run_id, "e", event_record.pack_step(packed)],
    ]  # fmt: skip
    if any(event.kind == "run.completed" for event, _ in events):
        commands.append(["EXPIRE", own, str(keys.RUN_EVENTS_TTL_SECONDS)])
    return commands


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def timer_score(due_at: datetime) -> int:
    """A timer's score: its due time in ms since the epoch, rounded up (in integers,
    not float seconds) so that a timer is never taken before it is due."""
    return -(-(as_utc(due_at) - _EPOCH) // _MS)


def timer_commands(effect: SetTimer | CancelTimer, tag: str) -> list[list[str]]:
    """Arm (ZADD moves an armed timer's due time) or disarm a timer, in the step that
    stores the state needing it, so a timer exists exactly when its state does."""
    if isinstance(effect, CancelTimer):
        return [
            ["ZREM", keys.timers(tag), effect.timer_id],
            ["HDEL", keys.timer_details(tag), effect.timer_id],
        ]
    due = str(timer_score(effect.due_at))
    details = {
        "runId": effect.run_id, "nodeRunId": effect.node_run_id,
        "purpose": effect.purpose, "dueAt": format_timestamp(effect.due_at),
    }  # fmt: skip
    return [
        ["ZADD", keys.timers(tag), due, effect.timer_id],
        ["HSET", keys.timer_details(tag), effect.timer_id, _json(details)],
        # The timer service sleeps until its earliest timer (capped): an earlier one
        # armed meanwhile wakes it.
        ["PUBLISH", keys.TIMERS_WAKE, due],
    ]
