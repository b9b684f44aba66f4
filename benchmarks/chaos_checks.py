"""The chaos run's invariants: what the stores and topics must hold after the kills.

Everything a run must have is derived from ids (``chaos_workflows.py``): the chain
runs triggered, the entity event and the ``chaos-on-item`` run of each, the schedule
ticks due while the load ran; what the topics, Redis and the receiver hold is
compared with it.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson

from benchmarks import chaos_workflows as flows
from benchmarks.chaos_report import Effects
from switchyard.engine.machine import waits
from switchyard.engine.machine.graph import Graph
from switchyard.engine.machine.state import RunState
from switchyard.engine.store.client import connect, redis_client
from switchyard.engine.store.entities import EntityStore
from switchyard.engine.store.runs import RunStore
from switchyard.schemas import parse_workflow
from switchyard.topics.reader import read_topic

if TYPE_CHECKING:
    from benchmarks.chaos import ChaosRun


def due_ticks(chaos: ChaosRun, until: datetime) -> list[str]:
    """The runs of the schedule ticks from the workflows' save to ``until``."""
    if not chaos.drives_triggers:
        return []
    return [
        flows.tick_run(workflow, tick)
        for workflow in flows.TICKS
        for tick in flows.ticks_between(workflow, chaos.saved_at, until)
    ]


def required_runs(chaos: ChaosRun) -> list[str]:
    """Every run that must exist and complete: the chain runs, one run per chain run's
    entity event, one per schedule tick due from the workflows' save to the load's end."""
    if not chaos.drives_triggers:
        return list(chaos.triggered)
    on_items = [flows.on_item_run(r) for r in chaos.triggered]
    return [*chaos.triggered, *on_items, *due_ticks(chaos, chaos.load_stopped_at)]


def _graphs(chaos: ChaosRun) -> dict[str, Graph]:
    definitions = flows.all_workflows(chaos.receiver.url, chaos.drives_triggers)
    return {d["identifier"]: Graph.of(parse_workflow({**d, "version": 1})) for d in definitions}


async def check_waits(chaos: ChaosRun) -> None:
    """Every run not COMPLETED names what it waits on (SPEC §7), even mid-chaos."""
    graphs = _graphs(chaos)
    client = redis_client(chaos.settings)
    try:
        await connect(client)
        states = await _states(RunStore(client), required_runs(chaos))
    except Exception as error:  # Redis may be the one just killed: the next check
        chaos.say(f"  waits check skipped ({error!r})")
        return
    finally:
        await client.aclose()
    chaos.report.wait_checks += 1
    chaos.report.waiting_on_nothing.update(
        run_id for run_id, state in states.items()
        if state.status != "COMPLETED" and not waits(state, graphs[state.workflow_identifier])
    )  # fmt: skip


async def _states(store: RunStore, run_ids: list[str]) -> dict[str, RunState]:
    found: dict[str, RunState] = {}
    for i in range(0, len(run_ids), 500):
        stored = await store.load(run_ids[i : i + 500])
        found.update({run_id: s.state for run_id, s in stored.items()})
    return found


async def settle(chaos: ChaosRun, within: float) -> dict[str, RunState]:
    """The states of every required run, once all are COMPLETED or ``within`` passed."""
    client = redis_client(chaos.settings)
    try:
        await connect(client)
        deadline = time.monotonic() + within
        while True:
            wanted = required_runs(chaos)
            states = await _states(RunStore(client), wanted)
            done = sum(s.status == "COMPLETED" for s in states.values())
            if done == len(wanted) or time.monotonic() > deadline:
                return states
            await asyncio.sleep(0.5)
    finally:
        await client.aclose()


async def check(chaos: ChaosRun, states: dict[str, RunState]) -> None:
    report = chaos.report
    for run_id in required_runs(chaos):
        state = states.get(run_id)
        if state is None:
            report.lost.append(run_id)
        elif state.status != "COMPLETED":
            waiting = [nr.node for nr in state.node_runs if nr.status == "IN_PROGRESS"]
            report.stuck[run_id] = waiting
        elif state.result != "SUCCESS":
            report.failed.append(f"{run_id}:{state.result}")
        else:
            report.completed += 1
    done = [r for r in chaos.triggered if r in states and states[r].status == "COMPLETED"]
    report.event_runs = sum(states.get(flows.on_item_run(r)) is not None for r in chaos.triggered)
    report.ticks = len(due_ticks(chaos, chaos.load_stopped_at))
    report.tick_runs = sum(1 for r, s in states.items() if s.workflow_identifier in flows.TICKS)
    report.webhooks = _effects(chaos, flows.HOOK_PATH, flows.hook_key, done)
    report.handler = _effects(chaos, flows.WORK_PATH, flows.work_key, done)
    report.unkeyed_calls = len(chaos.receiver.unkeyed)
    if chaos.drives_triggers:
        items = [r for r in chaos.triggered if _done(states.get(flows.on_item_run(r)))]
        report.late_calls = _effects(chaos, flows.LATE_PATH, flows.late_key, items)
        await _check_timer_firings(chaos, states, items)
    await _check_entities(chaos, done)
    await _check_run_events(chaos)
    await _check_requests(chaos)
    await _check_entity_events(chaos, done)
    await _check_dead_letters(chaos)


def _done(state: RunState | None) -> bool:
    return state is not None and state.status == "COMPLETED"


async def _check_timer_firings(
    chaos: ChaosRun, states: dict[str, RunState], items: list[str]
) -> None:
    """Each completed on-item run's late node completed by its deadline's timer, once:
    the timer service fires at least once (a kill between its fire and its removal fires
    again), the engine applies one firing and finds the others stale."""
    fired: defaultdict[str, int] = defaultdict(int)
    for record in await read_topic(chaos.settings, chaos.registry.inbox.name):
        try:
            event = orjson.loads(record.value)
        except orjson.JSONDecodeError:  # the poison
            continue
        if event.get("type") == "TimerFired" and event.get("purpose") == "node_timeout":
            fired[event.get("nodeRunId") or ""] += 1
    timers = chaos.report.timers
    timers.expected = len(items)
    for run_id in items:
        key = flows.late_key(run_id)
        late = [nr for nr in states[flows.on_item_run(run_id)].node_runs if nr.node == "late"]
        by_timer = [nr for nr in late if nr.timed_out and nr.output == {"timeout": True}]
        if len(late) == 1 and len(by_timer) == 1 and fired.get(key):
            timers.applied += 1
        elif len(late) > 1:
            timers.extra.append(key)
        else:
            timers.missing.append(key)
    wanted = {flows.late_key(r) for r in items}
    timers.calls = sum(n for key, n in fired.items() if key in wanted)
    timers.repeated_calls = sum(n - 1 for key, n in fired.items() if key in wanted)


def _effects(chaos: ChaosRun, path: str, key_of: Callable[[str], str], done: list[str]) -> Effects:
    """Each completed chain run's attempt applied once at ``path``; an applied key no
    attempt of a triggered run has is an effect applied a second time."""
    receiver = chaos.receiver
    with receiver.lock:
        applied = {key for (p, key) in receiver.applied if p == path}
    wanted = {key_of(r) for r in done}
    every_attempt = {key_of(r) for r in chaos.triggered}
    return Effects(
        expected=len(wanted),
        applied=len(wanted & applied),
        missing=sorted(wanted - applied),
        extra=sorted(applied - every_attempt),
        calls=receiver.total(path),
        repeated_calls=receiver.repeated(path),
    )


async def _check_entities(chaos: ChaosRun, done: list[str]) -> None:
    client = redis_client(chaos.settings)
    try:
        await connect(client)
        store = EntityStore(client, None)  # type: ignore[arg-type]  # reads only
        for i in range(0, len(done), 20):  # within the client's pool
            batch = done[i : i + 20]
            found = await asyncio.gather(
                *(store.get(flows.BLUEPRINT, flows.item_identifier(r)) for r in batch)
            )
            chaos.report.entity_missing += [r for r, e in zip(batch, found, strict=True) if not e]
    finally:
        await client.aclose()
    chaos.report.entity_writes = len(done) - len(chaos.report.entity_missing)


async def _check_run_events(chaos: ChaosRun) -> None:
    """No transition applied twice (a seq with two payloads, a node run completed at two
    seqs), and no run created that nothing of the chaos started."""
    report = chaos.report
    seqs: dict[tuple[str, int], set[bytes]] = defaultdict(set)
    completions: dict[str, set[int]] = defaultdict(set)
    created: set[str] = set()
    for record in await read_topic(chaos.settings, chaos.registry.run_events.name):
        event = orjson.loads(record.value)
        seqs[(event["runId"], event["seq"])].add(record.value)
        if event["kind"] == "nodeRun.completed":
            completions[event["nodeRunId"]].add(event["seq"])
        elif event["kind"] == "run.created":
            created.add(event["runId"])
    report.duplicated += [f"{r}#{s}" for (r, s), v in seqs.items() if len(v) > 1]
    report.duplicated += [nr for nr, s in completions.items() if len(s) > 1]
    # Ticks fired after the load stopped (the scheduler runs on) are runs of the chaos too.
    known = set(required_runs(chaos)) | set(due_ticks(chaos, datetime.now(UTC)))
    report.unexpected_runs += sorted(created - known)


async def _check_requests(chaos: ChaosRun) -> None:
    """One node-run id per node of a run; how many requests were published again."""
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    seen: set[bytes] = set()
    for record in await read_topic(chaos.settings, chaos.registry.node_run_requests.name):
        context = orjson.loads(record.value)["context"]
        ids[(context["workflowRunId"], context["nodeIdentifier"])].add(context["nodeRunId"])
        if record.value in seen:
            chaos.report.requests_republished += 1
        seen.add(record.value)
    chaos.report.conflicting_ids += [f"{r}/{n}" for (r, n), v in ids.items() if len(v) > 1]


async def _check_entity_events(chaos: ChaosRun, done: list[str]) -> None:
    """One entity event per chain run's write (published again byte for byte at most)."""
    events: dict[str, set[bytes]] = defaultdict(set)
    records = 0
    for record in await read_topic(chaos.settings, chaos.registry.entity_events.name):
        events[orjson.loads(record.value)["id"]].add(record.value)
        records += 1
    report = chaos.report
    report.duplicated += [f"entity event {e}" for e, v in events.items() if len(v) > 1]
    report.entity_missing += [f"event of {r}" for r in done if flows.item_event_id(r) not in events]
    report.entity_events = len(events)
    report.entity_events_republished = records - len(events)


async def _check_dead_letters(chaos: ChaosRun) -> None:
    """Dead letters only for the poison, each sent poison's source named by one."""
    report = chaos.report
    inbox = chaos.registry.inbox.name
    letters: dict[tuple[int, int], set[bytes]] = defaultdict(set)
    for record in await read_topic(chaos.settings, chaos.registry.dead_letter.name):
        letter = orjson.loads(record.value)
        source = (letter["partition"], letter["offset"])
        if letter["topic"] == inbox and source in chaos.poison:
            if letters[source]:
                report.poison_letters_repeated += 1
            letters[source].add(record.value)
        else:
            report.unexpected_dead_letters.append(
                f"{letter['topic']}/{source}: {letter['code']}: {letter['reason']}"
            )
    report.duplicated += [f"dead letter of {s}" for s, v in letters.items() if len(v) > 1]
    report.poison_dead_lettered = len(letters)
    report.poison_missing = [f"#{n} at {s}" for s, n in chaos.poison.items() if s not in letters]
