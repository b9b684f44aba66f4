"""The tracing work of one Kafka record in a traced process, without Kafka: the
``record_span`` around a decision plus the headers handed to what it sends, for a
record whose trace was not sampled, for one that was, and for one with no context (a
root: the sampler decides).

    python -m benchmarks.tracing_record [--records 20000] [--rounds 5]

Tracing on, exporting over OTLP to :mod:`benchmarks.otlp_sink` in a process of its own
(only sampled spans are ever exported), ``parentbased_traceidratio`` at 0.1 as the
README's example; the record's ``traceparent`` flags decide, as they do past the
bridge. Prints µs per record, the best of the rounds: the wall clock of the calling
thread, and the process's CPU (every thread's) with the spans queued meanwhile
exported (flushed at the end of the round), which adds what the SDK's export thread
spends on them. Figures, never assertions.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchmarks.otlp_sink import SinkProcess
from switchyard.topics.telemetry import tracing

_PARENT = b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-"
KINDS = {
    "not sampled": [("traceparent", _PARENT + b"00")],
    "sampled": [("traceparent", _PARENT + b"01")],
    # A trace's first record (a trigger sent with no context): the sampler decides, so
    # nine in ten are dropped and one in ten is sampled.
    "no context": [],
}


def _once(headers: list[tuple[str, bytes]]) -> None:
    attributes = {**tracing.record_attributes("inbox", 3, 12345), "switchyard.run_id": "wfr_1"}
    with tracing.record_span("engine.transition NodeRunUpdated", headers, attributes) as span:
        tracing.headers_of(span)  # the outbox messages' headers
        tracing.headers_of()  # a send inside the span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sy-otlp-") as folder:
        sink = SinkProcess(Path(folder) / "sink.ready")
        sink.start()
        try:
            _measure(sink.endpoint, args.records, args.rounds)
        finally:
            sink.stop()


def _measure(endpoint: str, records: int, rounds: int) -> None:
    os.environ.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0.1",
        OTEL_BSP_MAX_QUEUE_SIZE="1000000",  # every sampled span exported, none dropped
    )
    tracing.configure_tracing("bench")
    try:
        for kind, headers in KINDS.items():
            best = best_cpu = float("inf")
            for _ in range(rounds):
                tracing.flush_tracing()
                started, cpu = time.perf_counter(), time.process_time()
                for _ in range(records):
                    _once(headers)
                best = min(best, (time.perf_counter() - started) / records)
                tracing.flush_tracing()  # what this round queued, exported
                best_cpu = min(best_cpu, (time.process_time() - cpu) / records)
            print(f"{kind:<12} {best * 1e6:6.1f} µs per record, {best_cpu * 1e6:6.1f} µs "
                  f"of CPU with its export (best of {rounds})")  # fmt: skip
    finally:
        tracing.shutdown_tracing()


if __name__ == "__main__":
    main()
