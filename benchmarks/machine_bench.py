"""The engine's in-process cost per event: ``decide`` plus the state's JSON round trip.

    python -m benchmarks.machine_bench [--runs 2000]

Drives the benchmark's ``chain`` workflow (trigger → CONDITION → KAFKA → KAFKA) through
the pure machine the way the processor does for each event: load the stored state
(JSON), ``decide``, dump the new state. No Kafka, no Redis: what the engine's own CPU
costs per event, which the end-to-end figures on a shared 2-core machine hide in
their noise. Best of 5 rounds; figures printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta

from benchmarks import workloads
from switchyard.engine.machine import decide, dump_state, load_state
from switchyard.engine.templates import JqTemplates, TemplateLimits
from switchyard.schemas import (
    NodeRunUpdated,
    RunTriggered,
    new_run_id,
    node_run_id,
    parse_workflow,
)
from switchyard.schemas.settings import Settings

ROUNDS = 5


def one_round(templates: JqTemplates, runs: int) -> float:
    """Seconds per event over ``runs`` chain runs (3 events each)."""
    workflow = parse_workflow({**workloads.chain(), "version": 1})
    now = datetime(2026, 1, 1, tzinfo=UTC)
    events = 0
    started = time.perf_counter()
    for n in range(runs):
        run_id = new_run_id(os.urandom)
        trigger = RunTriggered(
            run_id=run_id, workflow_identifier=workflow.identifier,
            inputs={"service": f"svc-{n % 97}", "n": n}, created_by="bench", triggered_at=now,
        )  # fmt: skip
        decision = decide(None, trigger, workflow=workflow, now=now, templates=templates,
                          secrets={})  # fmt: skip
        raw = dump_state(decision.state) if decision.state else b""
        for node in ("first", "second"):
            now += timedelta(milliseconds=5)
            update = NodeRunUpdated(
                run_id=run_id, node_run_id=node_run_id(run_id, node), status="COMPLETED",
                result="SUCCESS", output={"ok": True, "node": node}, sent_at=now,
            )  # fmt: skip
            decision = decide(load_state(raw), update, workflow=workflow, now=now,
                              templates=templates, secrets={})  # fmt: skip
            assert decision.state is not None, decision.rejection
            raw = dump_state(decision.state)
        assert decision.state is not None
        assert decision.state.result == "SUCCESS"
        events += 3
    return (time.perf_counter() - started) / events


def main(runs: int) -> None:
    with JqTemplates(TemplateLimits.from_settings(Settings())) as templates:
        one_round(templates, 100)  # warm the compile cache
        best = min(one_round(templates, runs) for _ in range(ROUNDS))
    print(f"machine: {best * 1e6:.0f} µs per event (decide + state JSON round trip), "
          f"best of {ROUNDS} rounds of {runs} chain runs")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    main(parser.parse_args().runs)
