"""The engine's in-process cost per inbox event, step by step, with a profile.

    python -m benchmarks.engine_step [--runs 2000] [--rounds 5] [--profile 20]

Drives the benchmark's ``chain`` workflow (trigger → CONDITION → KAFKA → KAFKA) through
what the processor does for each inbox record, without Kafka or Redis: decode the
record, find its partition, load the stored state, ``decide``, plan the Redis step
(which dumps the new state), and find the partition of each outbox message. The
dumped state of one event is what the next event of the run loads, as the processor
reads it back from Redis. Timed in this process's CPU time, not the wall clock: on a
shared machine the wall clock also counts other processes' turns on the cores (the
chain's templates are plain paths, which run in this process, not in the sandbox).
Figures are printed, never asserted: best of ``--rounds`` rounds, then one profiled
round with its top functions by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from benchmarks import workloads
from switchyard.engine.machine import decide, load_state
from switchyard.engine.machine.state import RunState
from switchyard.engine.store.plan import ApplyPlan, plan_decision
from switchyard.engine.store.slots import partition_tag
from switchyard.engine.templates import JqTemplates, TemplateLimits
from switchyard.schemas import (
    NodeRunUpdated,
    RunTriggered,
    Workflow,
    decode_inbox,
    encode,
    new_run_id,
    node_run_id,
    parse_workflow,
)
from switchyard.schemas.settings import Settings
from switchyard.topics.partitioning import partition_of
from switchyard.topics.registry import TopicRegistry

PARTITIONS = 12  # the inbox's default partition count
START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Bench:
    workflow: Workflow
    templates: JqTemplates
    registry: TopicRegistry


def _records(run_id: str, n: int, now: datetime) -> list[bytes]:
    """A chain run's inbox records as the wire carries them: trigger, two reports."""
    trigger = RunTriggered(
        run_id=run_id, workflow_identifier="bench-chain", inputs={"service": f"svc-{n % 97}",
        "n": n}, created_by="bench", triggered_at=now,
    )  # fmt: skip
    records = [encode(trigger)]
    for i, node in enumerate(("first", "second")):
        report = NodeRunUpdated(
            run_id=run_id, node_run_id=node_run_id(run_id, node), status="COMPLETED",
            result="SUCCESS", output={"ok": True, "node": node},
            sent_at=now + timedelta(milliseconds=5 * (i + 1)),
        )  # fmt: skip
        records.append(encode(report))
    return records


def _stored(plan: ApplyPlan) -> bytes:
    """The state the plan writes (its HSET of the run's ``state`` field)."""
    command = next(c for c in plan.commands if c[0] == "HSET" and c[2] == "state")
    return command[3].encode()


def one_event(bench: Bench, raw_event: bytes, stored: bytes | None, offset: int,
              now: datetime) -> bytes:  # fmt: skip
    """One inbox record through the processor's pure path; returns the stored state."""
    event = decode_inbox(raw_event)
    partition = partition_of(event.run_id, PARTITIONS)
    state: RunState | None = load_state(stored) if stored is not None else None
    decision = decide(state, event, workflow=bench.workflow, now=now,
                      templates=bench.templates, secrets={})  # fmt: skip
    if not decision.accepted:
        raise RuntimeError(f"bench event rejected: {decision.rejection}")
    plan = plan_decision(state, decision, offset=offset, registry=bench.registry,
                         partition=partition, tag=partition_tag(partition, PARTITIONS),
                         workflow=bench.workflow)  # fmt: skip
    for message in plan.outbox:  # the producer puts each message in its key's partition
        partition_of(message.key, PARTITIONS)
    return _stored(plan)


def chain_runs(runs: int) -> list[list[bytes]]:
    """The inbox records of ``runs`` chain runs, built before the clock starts."""
    return [_records(new_run_id(os.urandom), n, START) for n in range(runs)]


def one_round(bench: Bench, runs_records: list[list[bytes]], day: int = 0) -> float:
    """CPU seconds per event over the chain runs' records (3 events each), the clock
    starting on ``day``: each round its own instants, as a real engine's clock moves on
    (a round must not find the timestamps of the one before it cached)."""
    now = START + timedelta(days=day)
    offset = 0
    started = time.process_time()
    for records in runs_records:
        stored: bytes | None = None
        for raw_event in records:
            offset += 1
            now += timedelta(microseconds=1700)
            stored = one_event(bench, raw_event, stored, offset, now)
    return (time.process_time() - started) / (3 * len(runs_records))


@contextmanager
def setup() -> Iterator[Bench]:
    """The chain workflow, running templates and the topic registry of the defaults."""
    settings = Settings()
    workflow = parse_workflow({**workloads.chain(), "version": 1})
    with JqTemplates(TemplateLimits.from_settings(settings)) as templates:
        yield Bench(workflow, templates, TopicRegistry.from_settings(settings))


def main(runs: int, rounds: int, top: int) -> None:
    with setup() as bench:
        one_round(bench, chain_runs(100))  # warm the template compile cache
        # New run ids and instants each round: what a real engine meets.
        best = min(one_round(bench, chain_runs(runs), day) for day in range(1, rounds + 1))
        print(f"engine step: {best * 1e6:.1f} µs CPU per event (decode, partition, load, decide, "
              f"plan + dump), best of {rounds} rounds of {runs} chain runs")  # fmt: skip
        if top:
            profiler = cProfile.Profile()
            profiler.runcall(one_round, bench, chain_runs(runs), rounds + 1)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", type=int, default=20, help="profile rows (0: none)")
    args = parser.parse_args()
    main(args.runs, args.rounds, args.profile)
