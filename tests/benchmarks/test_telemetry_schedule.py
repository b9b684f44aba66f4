"""The telemetry benchmark's schedules and its paired figure: pure functions, no stack."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.telemetry import VARIANTS, paired, parse, schedule, summarise

BY_KEY = {v.key: v for v in VARIANTS}


def _keys(order: list[Any]) -> list[str]:
    return [v.key for v in order]


def _window(variant: str, rate: float) -> dict[str, Any]:
    return {
        "variant": variant, "spans": 0, "spans_per_run": 0.0, "counters_total": {},
        "closed": {"runs_per_s": rate, "node_runs_per_s": 3 * rate,
                   "first_half_runs_per_s": rate, "second_half_runs_per_s": rate},
        "open": {"latency_ms": {"p50": 1.0, "p99": 2.0}},
        "cpu_ms_per_run": {"all": 2.0, "engine": 1.5},
    }  # fmt: skip


def test_the_mirrored_schedule_reverses_every_other_repeat() -> None:
    variants = [BY_KEY["off"], BY_KEY["metrics"], BY_KEY["trace10"]]
    assert _keys(schedule(variants, 3)) == [
        "off", "metrics", "trace10", "trace10", "metrics", "off", "off", "metrics", "trace10",
    ]  # fmt: skip


def test_the_bracketed_schedule_puts_the_baseline_on_both_sides_of_every_window() -> None:
    variants = [BY_KEY["off"], BY_KEY["metrics"], BY_KEY["trace10"]]
    assert _keys(schedule(variants, 2, bracket=True)) == [
        "off", "metrics", "off", "trace10", "off", "trace10", "off", "metrics", "off",
    ]  # fmt: skip


def test_a_bracketed_schedule_needs_the_baseline_and_another_variant() -> None:
    with pytest.raises(ValueError, match="'off'"):
        schedule([BY_KEY["metrics"], BY_KEY["trace10"]], 1, bracket=True)
    with pytest.raises(ValueError, match="another variant"):
        schedule([BY_KEY["off"]], 1, bracket=True)
    with pytest.raises(SystemExit):  # the command line says so, without a traceback
        parse(["--bracket", "--variants", "metrics,trace10"])


def test_each_window_is_compared_with_the_baseline_windows_next_to_it() -> None:
    # The machine slows from 400 to 200 runs/s; metrics cost 5%, tracing 10%, at the
    # speed of their moment. The means of whole variants see the drift, not the cost.
    runs = [
        _window("off", 400), _window("metrics", 0.95 * 375), _window("off", 350),
        _window("trace10", 0.9 * 300), _window("off", 250),
        _window("trace10", 0.9 * 225), _window("off", 200),
    ]  # fmt: skip
    deltas = paired(runs)
    assert deltas["metrics"] == [-5.0]
    assert deltas["trace10"] == [-10.0, -10.0]
    summary = summarise(runs)
    assert summary["trace10"]["paired_delta_pct"] == -10.0
    assert summary["trace10"]["paired_deltas_pct"] == [-10.0, -10.0]
    assert summary["trace10"]["delta_pct"] == -21.3  # 236.25 against a mean of 300
    assert "paired_delta_pct" not in summary["off"]


def test_a_window_at_an_end_is_compared_with_the_one_baseline_beside_it() -> None:
    runs = [_window("metrics", 380), _window("off", 400), _window("trace10", 360)]
    assert paired(runs) == {"metrics": [-5.0], "trace10": [-10.0]}
    assert paired([_window("metrics", 380)]) == {}  # no baseline at all: nothing paired
