"""The telemetry benchmark in seconds: its OTLP sink counts what an exporter sends, and
a short run of two variants on real processes shows tracing and metrics really off in
one and on in the other (spans the sink received, counters the processes exposed).
Never a timing threshold: the cost is a figure."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from benchmarks.otlp_sink import SinkProcess
from tests.conftest import REPO
from tests.ports import free_port, free_ports, run_on_free_ports


async def test_the_sink_counts_the_spans_an_otlp_exporter_sends(tmp_path: Path) -> None:
    sink = SinkProcess(tmp_path / "sink.ready")
    sink.start()
    try:
        provider = TracerProvider(resource=Resource.create({"service.name": "switchyard-test"}))
        exporter = OTLPSpanExporter(endpoint=f"{sink.endpoint}/v1/traces")
        provider.add_span_processor(BatchSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
        for _ in range(3):
            with tracer.start_as_current_span("parent"), tracer.start_as_current_span("child"):
                pass
        provider.shutdown()  # flushes: the export has been answered when this returns
        async with httpx.AsyncClient() as client:
            refused = await client.post(f"{sink.endpoint}/v1/traces", content=b"\xff not proto")
        counts = await sink.counts()
    finally:
        sink.stop()
    assert refused.status_code == 400
    assert counts["spans"] == 6
    assert counts["by_service"] == {"switchyard-test": 6}
    assert counts["rejected"] == 1


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_short_run_traces_and_records_only_in_the_variants_that_turn_them_on(
    tmp_path: Path,
) -> None:
    out = tmp_path / "result.json"
    tried: list[Path] = []

    def command() -> list[str]:
        tried.append(tmp_path / f"stack-{len(tried)}")  # a broker's data holds its ports
        return [
            sys.executable, "-m", "benchmarks.telemetry", "--quick", "--seconds", "2",
            "--variants", "off,trace100", "--scrape-every", "1",
            "--home", str(tried[-1]), "--cache-home", str(REPO / ".switchyard" / "cache"),
            "--kafka-port", str(free_ports(2)), "--redis-port", str(free_port()),
            # The ops ports of five processes: the given one and the next four.
            "--bridge-port", str(free_port()), "--ops-port", str(free_ports(5)),
            "--out", str(out),
        ]  # fmt: skip

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWITCHYARD_", "OTEL_"))}
    done = run_on_free_ports(command, cwd=REPO, env=env, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "metrics off" in done.stdout
    assert "metrics + tracing 100%" in done.stdout

    result = json.loads(out.read_text())
    off, traced = result["runs"]
    assert (off["variant"], traced["variant"]) == ("off", "trace100")
    for run in (off, traced):
        assert run["closed"]["completed"] > 0
        assert run["runs"] > 0
        assert run["sink_rejected"] == 0
        assert run["cpu_ms_per_run"]["engine"] > 0
    # Tracing: nothing exported with it off; the engine's spans with every run sampled.
    assert off["spans"] == 0
    assert traced["spans"] > 0
    assert traced["spans_by_service"].get("switchyard-engine", 0) > 0
    # Metrics: every process's counters stay at zero with the switch off; the engine's
    # count the runs with it on (read from /metrics at the end of each variant).
    assert set(off["counters_total"]) >= {"engine", "executor", "bridge"}
    assert sum(off["counters_total"].values()) == 0
    assert traced["counters_total"]["engine"] > 0
    assert traced["scrapes"] > len(traced["counters_total"])  # periodic scrapes too
