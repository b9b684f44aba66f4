"""The benchmark's arithmetic, without a stack: CPU from ``/proc`` (children included)
and the ``seq`` workload's per-step figures from message timestamps."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from benchmarks.cpu import cpu_seconds, per_run
from benchmarks.seq import SeqRun, figures

# A child that burns 0.3 s of its own CPU (measured by itself), then exits.
_BURN = "import os\nwhile sum(os.times()[:2]) < 0.3:\n    pass\n"


def test_a_reaped_child_s_cpu_counts_for_its_parent() -> None:
    before = cpu_seconds(os.getpid())
    subprocess.run([sys.executable, "-c", _BURN], check=True)
    assert cpu_seconds(os.getpid()) - before >= 0.29


def test_a_live_child_s_cpu_counts_for_its_parent() -> None:
    before = cpu_seconds(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", _BURN + "import sys\nsys.stdin.read()\n"],
                             stdin=subprocess.PIPE)  # fmt: skip
    try:
        while cpu_seconds(child.pid) < 0.29:  # burnt once it waits on stdin
            assert child.poll() is None
            time.sleep(0.01)  # the parent itself stays nearly idle
        # In whole clock ticks (/proc's 1/100 s): 17.09 - 16.8 is 0.28999… in floats.
        assert round((cpu_seconds(os.getpid()) - before) * 100) >= 29
    finally:
        child.communicate(b"")


def test_a_process_that_is_gone_counts_nothing() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert cpu_seconds(child.pid) == 0.0


def test_cpu_per_run_is_per_process_and_in_all() -> None:
    figures_ = per_run(
        {"engine": 1.0, "redis": 2.0}, {"engine": 1.5, "redis": 2.1, "new": 0.2}, 100
    )
    assert figures_ == {"engine": 5.0, "redis": 1.0, "new": 2.0, "all": 8.0}
    assert per_run({"engine": 1.0}, {"engine": 2.0}, 0)["all"] == 1000.0  # no runs: per window


def test_seq_steps_are_timed_from_report_to_next_request_and_request_to_request() -> None:
    run = SeqRun(run_id="r", triggered_ms=1000)
    run.requested = {1: 1010, 2: 1030, 3: 1055}
    run.reported = {1: 1020, 2: 1041, 3: 1070}
    run.completed_ms = 1080
    assert run.overheads(3) == [10.0, 14.0]  # 1030 - 1020, 1055 - 1041
    assert run.totals(3) == [20.0, 25.0, 25.0]  # 1030 - 1010, 1055 - 1030, 1080 - 1055
    result = figures([run], steps=3, unfinished=1)
    assert result["step_overhead_ms"]["n"] == 2
    assert result["step_total_ms"]["max"] == 25.0
    assert result["first_request_ms"]["p50"] == 10.0
    assert result["run_ms"]["p50"] == 80.0
    assert (result["runs"], result["unfinished"]) == (1, 1)


def test_a_step_missing_a_timestamp_is_left_out_not_guessed() -> None:
    run = SeqRun(run_id="r", triggered_ms=0, requested={1: 5, 3: 40}, reported={1: 9, 2: 30})
    assert run.overheads(3) == [10.0]  # step 1 → 2 left out: step 2's request unseen
    assert run.totals(3) == []  # each needs a request unseen (step 2's, run.completed)
