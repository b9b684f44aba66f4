"""The benchmark in seconds, to keep it from rotting: it runs, prints the table and
writes the JSON with sane fields. Never a timing threshold: speed is a figure."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Services

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_pair() -> int:
    """A port whose successor is free too (the broker's controller listener)."""
    while True:
        port = _free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


@pytest.mark.timeout(400)
def test_quick_benchmark_prints_the_table_and_writes_sane_json(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    command = [
        sys.executable, "-m", "benchmarks.run", "--quick", "--seconds", "2",
        "--workloads", "chain", "--skip", "temporal,profile", "--in-flight", "200",
        "--home", str(tmp_path / "stack"), "--cache-home", str(REPO / ".switchyard" / "cache"),
        "--kafka-port", str(_free_pair()), "--redis-port", str(_free_port()),
        "--bridge-port", str(_free_port()), "--out", str(out),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=380, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "runs/s" in done.stdout
    assert "chain" in done.stdout

    result = json.loads(out.read_text())
    assert result["quick"] is True
    assert result["machine"]["cpus"] >= 1
    chain = result["workloads"]["chain"]
    assert chain["closed"]["completed"] > 0
    assert chain["closed"]["runs_per_s"] > 0
    assert chain["closed"]["node_runs_per_s"] == pytest.approx(4 * chain["closed"]["runs_per_s"])
    assert [o["fraction_of_max"] for o in chain["open"]] == [0.25, 0.5, 0.8]
    for phase in chain["open"]:
        latency = phase["latency_ms"]
        if phase["completed"]:
            assert 0 <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert chain["rss_mib_under_load"]["engine"] > 0
    assert chain["redis_bytes_per_completed_run"]["used_memory_delta_per_run"] > 0
    assert result["raw_kafka"]["closed"]["runs_per_s"] > 0
    assert result["in_flight"]["runs"] == 200
    assert result["in_flight"]["engine_rss_mib"] > 0
    # Every deadline run beside the load and beside the held runs timed out, measured.
    assert result["in_flight"]["timers_pending"] >= 200
    for late in (chain["timer_lateness_at_50"], result["in_flight"]["timer_lateness"]):
        assert late["timed_out"] == late["runs"] > 0
        assert 0 <= late["p50_ms"] <= late["p99_ms"] <= late["max_ms"]


@pytest.mark.timeout(300)
def test_the_trigger_benchmark_runs_every_update_to_a_completed_run(services: Services) -> None:
    """The real engine, executor and trigger matcher processes: each entity update
    starts one run, and each run's UPSERT_ENTITY completes."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": services.kafka_bootstrap,
           "REDIS_URL": services.redis_url}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.triggers", "--rate", "20", "--seconds", "1",
         "--writes", "5", "--redis-db", "13"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "writes: 5 one after another" in done.stdout
    assert "completed runs observed: 20 of 20" in done.stdout, done.stdout
