"""Tracing: the OTEL_* rule, nothing installed and no headers while off, the provider
the environment asks for while on, trace context through Kafka headers and the outbox.

What is process-wide (the global tracer provider, the switch) is checked in a fresh
interpreter each time, so no test leaves tracing on for the others."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from switchyard.engine.store.plan import OutboxMessage
from switchyard.topics.telemetry import tracing

# Sends one message through an EventProducer whose aiokafka producer is a recorder,
# inside a span when tracing is on, and prints what the process ended up with.
PROBE = """
import asyncio, json
from opentelemetry import trace
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.telemetry import tracing

class Recorder:
    sent = []
    async def send(self, topic, value, **kwargs):
        self.sent.append(kwargs)
        return None

async def main():
    on = tracing.configure_tracing("engine")
    producer = EventProducer(Settings())
    producer._producer = Recorder()
    with tracing.tracer().start_as_current_span("request") as span:
        await producer.send("t", "k", b"v", partition=0)
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider = trace.get_tracer_provider()
    print(json.dumps({
        "on": on, "enabled": tracing.enabled(),
        "provider": type(provider).__module__ + "." + type(provider).__name__,
        "service": dict(getattr(provider, "resource", None).attributes) if on else None,
        "sampler": provider.sampler.get_description() if on else None,
        "headers": [[k, v.decode()] for k, v in (Recorder.sent[0]["headers"] or [])],
        "trace_id": trace_id,
    }))
    tracing.shutdown_tracing()

asyncio.run(main())
"""


def probe(**env: str) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console,otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, False),
        ({"OTEL_TRACES_EXPORTER": "console"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "TRUE"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "false"}, True),
    ],
)
def test_the_otel_environment_decides_whether_tracing_is_on(
    env: dict[str, str], expected: bool
) -> None:
    assert tracing.requested(env) is expected


def test_off_installs_nothing_and_adds_no_headers() -> None:
    found = probe(OTEL_EXPORTER_OTLP_ENDPOINT="", OTEL_TRACES_EXPORTER="none")
    assert found["on"] is False
    assert found["enabled"] is False
    assert found["provider"] == "opentelemetry.trace.ProxyTracerProvider"
    assert found["headers"] == []  # the producer passed headers=None
    assert found["trace_id"] == "0" * 32  # the no-op tracer: no span at all


def test_on_installs_the_sdk_provider_the_environment_describes() -> None:
    found = probe(
        OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="1.0",
    )  # fmt: skip
    assert found["on"] is True
    assert found["provider"] == "opentelemetry.sdk.trace.TracerProvider"
    assert found["service"]["service.name"] == "switchyard-engine"
    assert found["sampler"].startswith("ParentBased{root:TraceIdRatioBased{1.0}")
    # The message sent inside the span carries that span's context.
    names = [name for name, _ in found["headers"]]
    assert names == ["traceparent"]
    version, trace_id, _span_id, flags = found["headers"][0][1].split("-")
    assert (version, trace_id) == ("00", found["trace_id"])
    assert int(flags, 16) & 1  # sampled


def test_otel_service_name_and_the_sampler_ratio_win() -> None:
    found = probe(
        OTEL_TRACES_EXPORTER="otlp", OTEL_SERVICE_NAME="my-engine",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0.1",
    )  # fmt: skip
    assert found["service"]["service.name"] == "my-engine"
    assert found["sampler"].startswith("ParentBased{root:TraceIdRatioBased{0.1}")


def test_trace_context_round_trips_through_kafka_headers() -> None:
    provider = TracerProvider()  # not installed globally: a tracer of its own
    with provider.get_tracer("test").start_as_current_span("parent") as span:
        headers = tracing.headers_of()
        assert headers == tracing.headers_of(span)
    assert [name for name, _ in headers] == ["traceparent"]
    extracted = trace.get_current_span(tracing.context_of(headers)).get_span_context()
    assert extracted.trace_id == span.get_span_context().trace_id
    assert extracted.span_id == span.get_span_context().span_id
    assert extracted.is_remote
    # Without a valid span there is nothing to carry, and nothing to read back.
    assert tracing.headers_of() == []
    assert not trace.get_current_span(tracing.context_of([])).get_span_context().is_valid


_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize(
    "headers",
    [
        [("traceparent", _PARENT.encode()), ("tracestate", b"vendor=a,other=b")],
        # baggage: the propagator API reads the record (and its baggage)
        [
            ("traceparent", _PARENT.encode()),
            ("tracestate", b"vendor=a,other=b"),
            ("baggage", b"team=platform"),
        ],
    ],
    ids=["traceparent-and-tracestate", "with-baggage"],
)
def test_context_of_reads_what_the_propagator_reads(headers: list[tuple[str, bytes]]) -> None:
    from opentelemetry import baggage, propagate

    ours = tracing.context_of(headers)
    theirs = propagate.extract(headers, getter=tracing._getter)
    mine = trace.get_current_span(ours).get_span_context()
    assert mine == trace.get_current_span(theirs).get_span_context()
    assert mine.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert mine.span_id == 0xB7AD6B7169203331
    assert mine.is_remote
    assert mine.trace_flags.sampled
    assert mine.trace_state.to_header() == "vendor=a,other=b"
    assert baggage.get_all(ours) == baggage.get_all(theirs)


@pytest.mark.parametrize(
    "parent",
    [
        b"00-00000000000000000000000000000000-b7ad6b7169203331-01",  # invalid trace id
        b"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # invalid span id
        b"00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01",  # not a delimiter
        b"00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",  # not hex
        b"00-short",
    ],
)
def test_context_of_gives_no_parent_for_a_broken_traceparent(parent: bytes) -> None:
    context = trace.get_current_span(tracing.context_of([("traceparent", parent)]))
    assert not context.get_span_context().is_valid


def test_headers_of_a_given_span_carry_its_tracestate() -> None:
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

    state = TraceState([("vendor", "a")])
    span = NonRecordingSpan(SpanContext(1, 2, is_remote=False,
                                        trace_flags=TraceFlags(1), trace_state=state))  # fmt: skip
    assert tracing.headers_of(span) == [
        ("traceparent", b"00-00000000000000000000000000000001-0000000000000002-01"),
        ("tracestate", b"vendor=a"),
    ]
    invalid = NonRecordingSpan(SpanContext(0, 0, is_remote=False))
    assert tracing.headers_of(invalid) == []


def test_the_outbox_keeps_a_message_s_headers_across_its_json() -> None:
    headers = (("traceparent", b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01"),
               ("tracestate", b"k=v"))  # fmt: skip
    message = OutboxMessage("topic", "key", b"{}", 3, headers)
    data = orjson.loads(orjson.dumps(message.to_json()))
    assert OutboxMessage.from_json(data) == message
    plain = OutboxMessage("topic", "key", b"{}")
    assert "headers" not in plain.to_json()  # off: the stored outbox is as it was
    assert OutboxMessage.from_json(plain.to_json()).headers is None


# Handles one record of each kind in a traced process and prints, per record, whether
# its span recorded, the headers it handed on (to messages and by the current span),
# and the spans the process finished.
RECORDS_PROBE = """
import json
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from switchyard.topics.telemetry import tracing

tracing.configure_tracing("engine")
finished = InMemorySpanExporter()
tracing._state.provider.add_span_processor(SimpleSpanProcessor(finished))
parent = "00-" + "a" * 32 + "-" + "b" * 16 + "-"
records = {
    "unsampled": [("traceparent", (parent + "00").encode()), ("tracestate", b"k=v"),
                  ("other", b"x")],
    "sampled": [("traceparent", (parent + "01").encode())],
    "none": [],
    "malformed": [("traceparent", b"00-zz" + b"a" * 30 + b"-" + b"b" * 16 + b"-00")],
}
seen = {}
for kind, headers in records.items():
    with tracing.record_span("engine.transition X", headers, {"k": "v"}) as span:
        seen[kind] = {
            "recording": span.is_recording(),
            "handed": [[k, v.decode()] for k, v in tracing.headers_of(span)],
            "current": [[k, v.decode()] for k, v in tracing.headers_of()],
            "traceparent_of": tracing.traceparent_of(span),
        }
        written = {}  # what the propagator writes for the span's own context
        propagate.inject(written, context=trace.set_span_in_context(
            trace.NonRecordingSpan(span.get_span_context())))
        seen[kind]["propagated"] = sorted(written.items())
spans = finished.get_finished_spans()
def parent_of(s):
    return format(s.parent.span_id, "016x") if s.parent else None
print(json.dumps({"seen": seen, "spans": [
    [s.name, format(s.context.trace_id, "032x"), parent_of(s)] for s in spans]}))
tracing.shutdown_tracing()
"""


def records_probe(**env: str) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}  # nothing sampled is sent
    done = subprocess.run([sys.executable, "-c", RECORDS_PROBE], env={**clean, **base, **env},
                          capture_output=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    return result


def test_a_record_of_an_unsampled_trace_gets_no_span_and_hands_its_headers_on() -> None:
    found = records_probe(OTEL_TRACES_SAMPLER="parentbased_traceidratio",
                          OTEL_TRACES_SAMPLER_ARG="0.1")  # fmt: skip
    unsampled = found["seen"]["unsampled"]
    assert unsampled["recording"] is False
    carried = [["traceparent", "00-" + "a" * 32 + "-" + "b" * 16 + "-00"], ["tracestate", "k=v"]]
    assert unsampled["handed"] == carried
    assert unsampled["current"] == carried  # what a send inside the block carries
    # A sampled parent still gets its span, a child of the record's.
    assert found["seen"]["sampled"]["recording"] is True
    handed = found["seen"]["sampled"]["handed"][0][1]
    assert handed.startswith("00-" + "a" * 32 + "-")
    assert handed.endswith("-01")
    assert handed != "00-" + "a" * 32 + "-" + "b" * 16 + "-01"  # its own span id
    names = [s for s in found["spans"] if s[1] == "a" * 32]
    assert names == [["engine.transition X", "a" * 32, "b" * 16]]
    # No header, or one that does not parse: the sampler decides, as before.
    assert found["seen"]["malformed"]["handed"] != found["seen"]["unsampled"]["handed"]


def test_a_root_the_sampler_drops_hands_on_what_the_propagator_would_write() -> None:
    found = records_probe(OTEL_TRACES_SAMPLER="parentbased_traceidratio",
                          OTEL_TRACES_SAMPLER_ARG="0")  # fmt: skip
    root = found["seen"]["none"]
    assert root["recording"] is False
    assert [k for k, _ in root["handed"]] == ["traceparent"]
    assert int(root["handed"][0][1][-2:], 16) & 1 == 0  # a fresh trace, not sampled
    assert root["handed"] == root["current"] == [list(kv) for kv in root["propagated"]]
    # Only the record whose parent was sampled made a span; the dropped root none.
    assert found["spans"] == [["engine.transition X", "a" * 32, "b" * 16]]
    for kind, seen in found["seen"].items():  # the run keeps the traceparent sent on
        assert seen["traceparent_of"] == seen["handed"][0][1], kind


def test_the_traceparent_a_run_keeps_is_its_recording_span_s() -> None:
    found = records_probe(OTEL_TRACES_SAMPLER="always_on")
    for kind, seen in found["seen"].items():
        assert seen["recording"] is True, kind
        assert seen["traceparent_of"] == dict(seen["propagated"])["traceparent"], kind


def test_a_sampler_that_ignores_parents_still_decides_for_an_unsampled_record() -> None:
    found = records_probe(OTEL_TRACES_SAMPLER="always_on")
    assert found["seen"]["unsampled"]["recording"] is True
    handed = found["seen"]["unsampled"]["handed"][0][1]
    assert handed.endswith("-01")
    assert len(found["spans"]) == 4  # every record, the unsampled one too


RUN_TRACE = "00-" + "c" * 32 + "-" + "d" * 16 + "-00"


def test_a_record_of_the_run_s_own_trace_keeps_its_own_parent() -> None:
    own = (("traceparent", b"00-" + b"c" * 32 + b"-" + b"e" * 16 + b"-00"), ("x", b"y"))
    assert tracing.run_parent(own, RUN_TRACE) == (own, ())


def test_a_record_without_trace_context_continues_the_run_s_trace() -> None:
    assert tracing.run_parent((("x", b"y"),), RUN_TRACE) == (
        (("traceparent", RUN_TRACE.encode()),), ())  # fmt: skip
    assert tracing.run_parent((), RUN_TRACE) == ((("traceparent", RUN_TRACE.encode()),), ())


def test_a_record_of_another_trace_continues_the_run_s_and_is_linked_to_its_own() -> None:
    other = (("traceparent", b"00-" + b"f" * 32 + b"-" + b"e" * 16 + b"-01"),)
    assert tracing.run_parent(other, RUN_TRACE) == (
        (("traceparent", RUN_TRACE.encode()),), other)  # fmt: skip


def test_a_run_keeping_no_trace_yet_takes_the_record_s() -> None:
    other = (("traceparent", b"00-" + b"f" * 32 + b"-" + b"e" * 16 + b"-01"),)
    assert tracing.run_parent(other, None) == (other, ())
    assert tracing.run_parent((), None) == ((), ())


def test_flush_tracing_while_off_has_nothing_to_wait_for() -> None:
    assert not tracing.enabled()
    assert tracing.flush_tracing(timeout_ms=1) is True


# Ends a span, flushes, and leaves without the exit's own flush (os._exit).
FLUSH_PROBE = """
import os
from switchyard.topics.telemetry import tracing
assert tracing.configure_tracing("probe")
with tracing.tracer().start_as_current_span("flushed"):
    pass
print(tracing.flush_tracing(), flush=True)
os._exit(0)
"""


def test_flush_tracing_exports_the_spans_ended_so_far() -> None:
    from tests.observability.otlp_receiver import otlp_receiver

    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    with otlp_receiver() as (url, received):
        # The batch processor alone would wait ten minutes: only the flush exports.
        env = {**clean, "OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_BSP_SCHEDULE_DELAY": "600000"}
        done = subprocess.run([sys.executable, "-c", FLUSH_PROBE], env=env,
                              capture_output=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout.decode().split() == ["True"]
        spans = received.snapshot()
    assert [(span.service, span.name) for span in spans] == [("switchyard-probe", "flushed")]
