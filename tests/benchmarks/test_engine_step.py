"""The engine-step micro-benchmark in a second, to keep it from rotting: it drives chain
runs to their end through the pure path and prints its figure and profile. Never a
timing threshold: speed is a figure."""

from __future__ import annotations

import re

import pytest

from benchmarks import engine_step
from switchyard.engine.machine import state_format


def test_the_engine_step_benchmark_completes_runs_and_prints_its_figure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine_step.main(runs=5, rounds=1, top=5)
    out = capsys.readouterr().out
    assert re.search(r"engine step: [\d.]+ µs CPU per event .* of 5 chain runs", out), out
    assert "Ordered by: internal time" in out


def test_each_event_stores_the_state_the_next_one_loads() -> None:
    # A run's three records: the last stored state is the completed run's.
    [records] = engine_step.chain_runs(1)
    with engine_step.setup() as bench:
        stored = None
        for offset, raw in enumerate(records, start=1):
            stored = engine_step.one_event(bench, raw, stored, offset, engine_step.START)
    assert stored is not None
    assert b'"result":"SUCCESS"' in stored
    # Stored in the current format, so the next load needs no upgrade step.
    assert stored.startswith(b'{"format":%d,' % state_format.CURRENT_FORMAT)
