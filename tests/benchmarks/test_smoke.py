"""The benchmark in seconds, to keep it from rotting: it runs, prints the table and
writes the JSON with sane fields. Never a timing threshold: speed is a figure."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Services
from tests.ports import is_free, run_on_free_ports

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _ports(*lengths: int) -> list[int]:
    """Runs of free ports (one per length), each free at +200 too (the durable profile's
    stack), and all below the ephemeral range: a client retrying a stopped stack's port
    from an ephemeral source port can take a port of that range for itself."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    chosen: list[int] = []
    taken: set[int] = set()
    for length in lengths:
        while True:
            first = rng.randrange(20000, min(low, 32768) - 400)
            wanted = {p + shift for p in range(first, first + length) for shift in (0, 200)}
            if not wanted & taken and all(is_free(port) for port in wanted):
                break
        taken |= wanted
        chosen.append(first)
    return chosen


@pytest.mark.timeout(600)
def test_quick_benchmark_prints_the_table_and_writes_sane_json(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    tried: list[Path] = []

    def command() -> list[str]:
        kafka, redis, bridge, ops = _ports(2, 1, 1, 5)
        tried.append(tmp_path / f"stack-{len(tried)}")  # a broker's data holds its ports
        return [
            sys.executable, "-m", "benchmarks.run", "--quick", "--seconds", "2",
            "--workloads", "chain,seq", "--skip", "temporal,profile", "--in-flight", "200",
            "--home", str(tried[-1]), "--cache-home", str(REPO / ".switchyard" / "cache"),
            "--kafka-port", str(kafka), "--redis-port", str(redis),
            "--bridge-port", str(bridge), "--ops-port", str(ops), "--out", str(out),
        ]  # fmt: skip

    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    done = run_on_free_ports(command, cwd=REPO, env=env, timeout=580)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "runs/s" in done.stdout
    assert "chain" in done.stdout

    result = json.loads(out.read_text())
    assert result["quick"] is True
    assert result["machine"]["cpus"] >= 1
    chain = result["workloads"]["chain"]
    assert chain["closed"]["completed"] > 0
    assert chain["closed"]["runs_per_s"] > 0
    # Counted from the run events, not derived: every run completed in the window showed
    # its 4 node-run completions (trigger, CONDITION, two KAFKA), and the count agrees
    # with a direct read of those runs from Redis (their completed node runs).
    closed = chain["closed"]
    assert closed["node_runs_per_run_observed"] == {"4": closed["completed"]}
    assert closed["node_runs_in_window"] >= 1
    checked = closed["node_runs_checked_in_store"]
    assert checked["runs"] >= 1, checked
    assert checked["runs_found"] == checked["runs"], checked
    assert checked["observed"] == checked["stored"] >= checked["runs"], checked
    assert checked["runs_differing"] == 0, checked
    # The window's node-run rate is that of the runs, give or take the runs straddling
    # its edges (the window counts completions, not whole runs).
    assert 0.5 < closed["node_runs_per_s"] / closed["node_runs_per_s_expected"] < 1.5
    # CPU per run over every process of the stack, the load generator among them.
    cpu = closed["cpu_ms_per_run"]
    for process in ("engine", "bridge", "kafka", "redis", "worker-chain", "load generator"):
        assert cpu[process] > 0, process
    assert cpu["all"] == pytest.approx(sum(v for k, v in cpu.items() if k != "all"), abs=0.01)
    assert result["raw_kafka"]["closed"]["cpu_ms_per_run"]["raw relay"] > 0
    seq = result["workloads"]["seq"]
    assert seq["runs"] > 0
    overhead, total = seq["step_overhead_ms"], seq["step_total_ms"]
    assert overhead["n"] == seq["runs"] * (seq["steps"] - 1)
    assert total["n"] == seq["runs"] * seq["steps"]
    assert 0 <= overhead["p50"] <= overhead["p99"] <= total["max"]
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

    # Both durability profiles, each read back from its running stack.
    assert result["durability"]["redis_appendfsync"] == "everysec"
    assert result["durability"]["kafka_flush"].startswith("default")
    durable = result["profiles"]["durable"]
    assert durable["durability"]["redis_appendfsync"] == "always"
    assert durable["durability"]["kafka_flush_settings"]["log.flush.interval.messages"] == "1"
    assert durable["workloads"]["chain"]["closed"]["runs_per_s"] > 0
    assert durable["workloads"]["seq"]["runs"] > 0
    assert "appendfsync always" in done.stdout
    assert (
        result["headline"]["durable"]["chain_runs_per_s"]
        == (durable["workloads"]["chain"]["closed"]["runs_per_s"])
    )


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
