"""OpenTelemetry traces across the Kafka hops: one switch, the provider, and W3C trace
context in Kafka record headers.

Tracing is on only when the standard environment asks for an OTLP export (the rule
is :func:`requested`); :func:`configure_tracing` then installs an SDK
``TracerProvider`` exporting over OTLP/HTTP in batches, with the sampler the
``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG`` variables choose (the SDK reads
them), flushed at exit. Off, nothing is installed and :func:`enabled` is False: the
callers check it once per batch (or per message sent) and do no other tracing work,
no header parsing and no spans.

Context travels as ``traceparent``/``tracestate`` headers of Kafka records, written
and read by the OpenTelemetry propagator API (:func:`headers_of`, :func:`context_of`)
over Kafka's list of ``(key, bytes)`` headers.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    Tracer,
    TraceState,
)

log = logging.getLogger("switchyard.tracing")

# Kafka record headers as aiokafka takes and gives them.
Headers = Sequence[tuple[str, bytes]]

_TRUE = {"true", "1", "yes"}


class _State:
    """The process's tracing: whether it is on, and what to shut down at the end."""

    enabled = False
    provider: Any = None  # the SDK TracerProvider when on
    tracer: Tracer = trace.NoOpTracer()
    # The sampler follows a remote parent's decision (every ``parentbased_*`` one): a
    # record whose trace was not sampled then needs no span of its own.
    follows_parent = False


_state = _State()


def requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the standard OpenTelemetry environment asks for traces over OTLP.

    On when ``OTEL_SDK_DISABLED`` is not true and either ``OTEL_TRACES_EXPORTER``
    names ``otlp``, or it is unset and ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set. ``OTEL_TRACES_EXPORTER=none`` (or
    any list without ``otlp``) keeps it off.
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER")
    if exporters is not None and exporters.strip():
        return "otlp" in {e.strip().lower() for e in exporters.split(",")}
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure_tracing(process: str) -> bool:
    """Install tracing for this process when :func:`requested`; returns whether it is on.

    ``service.name`` is ``OTEL_SERVICE_NAME`` (or ``service.name`` in
    ``OTEL_RESOURCE_ATTRIBUTES``) when set, else ``switchyard-<process>``. Outgoing
    httpx calls are instrumented too, so webhooks carry ``traceparent``. A second
    call while on changes nothing.
    """
    if _state.enabled or not requested():
        return _state.enabled
    # Imported only when on: the SDK and exporter cost nothing to a process without them.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol != "http/protobuf":
        log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s: only http/protobuf is supported; "
                    "exporting traces over it", protocol)  # fmt: skip
    resource = Resource.create()  # reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: f"switchyard-{process}"}))
    # No sampler given: the SDK takes OTEL_TRACES_SAMPLER(_ARG); shutdown runs at exit.
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    _state.provider = provider
    _state.tracer = provider.get_tracer("switchyard")
    _state.follows_parent = _follows_parent(provider.sampler)
    _state.enabled = True
    log.info("tracing on: %s exporting over OTLP/HTTP", resource.attributes.get(SERVICE_NAME))
    return True


def _follows_parent(sampler: object) -> bool:
    from opentelemetry.sdk.trace.sampling import ParentBased

    # From the environment a ParentBased sampler keeps its defaults: a remote parent not
    # sampled makes every child not sampled (ALWAYS_OFF).
    return isinstance(sampler, ParentBased)


def shutdown_tracing() -> None:
    """Flush and stop this process's tracing; :func:`enabled` is False after. Idempotent.

    For tests and embedding processes; a process exiting flushes on its own.
    """
    if not _state.enabled:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    _state.enabled = False
    _state.follows_parent = False
    _state.tracer = trace.NoOpTracer()
    HTTPXClientInstrumentor().uninstrument()
    provider, _state.provider = _state.provider, None
    provider.shutdown()


def flush_tracing(timeout_ms: int = 30_000) -> bool:
    """Export every span ended so far, now; True when done (or tracing is off)."""
    if not _state.enabled:
        return True
    return bool(_state.provider.force_flush(timeout_ms))


def enabled() -> bool:
    """Whether this process traces: the one check the hot paths make."""
    return _state.enabled


def tracer() -> Tracer:
    """Switchyard's tracer (a no-op one while off)."""
    return _state.tracer


class _HeadersGetter(Getter[Headers]):
    def get(self, carrier: Headers, key: str) -> list[str] | None:
        found = [value.decode("latin-1") for name, value in carrier if name == key and value]
        return found or None

    def keys(self, carrier: Headers) -> list[str]:
        return [name for name, _ in carrier]


class _HeadersSetter(Setter[list[tuple[str, bytes]]]):
    def set(self, carrier: list[tuple[str, bytes]], key: str, value: str) -> None:
        carrier.append((key, value.encode("latin-1")))


_getter = _HeadersGetter()
_setter = _HeadersSetter()


def context_of(headers: Headers) -> Context:
    """The trace context a record's headers carry (an empty context without any).

    A version-00 ``traceparent`` (with its ``tracestate``) is read here, without the
    propagator (with ``headers_of`` below: 13% fewer Python calls per sampled record
    under cProfile). Any other headers (another version, ``baggage``) go through the
    propagator API."""
    parent = tracestate = None
    for name, value in headers:
        if name == "traceparent":
            parent = value
        elif name == "tracestate":
            tracestate = value
        elif name == "baggage":
            return propagate.extract(headers, getter=_getter)
    context = _span_context(parent, tracestate) if parent is not None else None
    if context is None:
        return propagate.extract(headers, getter=_getter)
    return trace.set_span_in_context(NonRecordingSpan(context))


class _Unsampled(NonRecordingSpan):
    """The stand-in span of a record whose trace is not sampled: it records nothing and
    hands on the record's own trace headers, unchanged."""

    def __init__(self, context: SpanContext, carried: list[tuple[str, bytes]]) -> None:
        super().__init__(context)
        self.carried = carried


# traceparent, version 00: "00-" 32 hex trace id "-" 16 hex span id "-" 2 hex flags.
_TRACEPARENT_LENGTH = 55


def unsampled_span(headers: Headers) -> _Unsampled | None:
    """The stand-in span of a record whose ``traceparent`` says "not sampled", when the
    sampler follows parents; None when a span must be made (sampled, no or odd header).

    Parsing the one header by hand and skipping the sampler, span ids and attributes
    is what makes 90% of records at a 10% sampling ratio cost little (README:
    Observability, Traces)."""
    if not _state.follows_parent:
        return None
    parent = next((value for name, value in headers if name == "traceparent"), None)
    context = _span_context(parent) if parent is not None else None
    if context is None or context.trace_flags.sampled:
        return None
    carried = [(name, value) for name, value in headers if name in _TRACE_HEADERS]
    return _Unsampled(context, carried)


_TRACE_HEADERS = frozenset({"traceparent", "tracestate"})


def _span_context(parent: bytes, tracestate: bytes | None = None) -> SpanContext | None:
    """The remote span context of a version-00 ``traceparent`` (and its ``tracestate``);
    None when it is not one (the propagator then decides) or names an invalid trace or
    span."""
    if len(parent) != _TRACEPARENT_LENGTH or not parent.startswith(b"00-"):
        return None
    if parent[35:36] != b"-" or parent[52:53] != b"-":
        return None
    try:
        flags = int(parent[53:55], 16)
        trace_id, span_id = int(parent[3:35], 16), int(parent[36:52], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    state = TraceState.from_header([tracestate.decode("latin-1")]) if tracestate else None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags),
                       trace_state=state)  # fmt: skip


def stand_in(span: Span) -> _Unsampled | None:
    """The stand-in of a span the sampler dropped (a root at a low ratio, mostly),
    carrying the headers the propagator would write for it; None while it records.

    Formatting ``traceparent`` here instead of through the propagator, and never
    making the dropped span current, is what keeps a trace's first record cheap when
    it is not sampled, as :func:`unsampled_span` does for the records after it."""
    if span.is_recording():
        return None
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return _Unsampled(context, _carried(context))


def run_parent(headers: Headers, run_trace: str | None) -> tuple[Headers, Headers]:
    """The headers a run's record is traced under, and the ones it is linked to.

    ``run_trace`` is the ``traceparent`` the run keeps from its first traced transition
    (``RunState.trace``). A record of the run's own trace keeps its own parent (the
    nearer one: the worker's span that sent it). A record without trace context (a
    worker or client that sends none, a timer) or of another trace (a request to the
    bridge that started a trace of its own) continues the run's trace instead, linked
    to the other one: so one run is one trace whoever reports, and a run not sampled
    stays not sampled on every hop (the cheap path of :func:`record_span`)."""
    if run_trace is None:
        return headers, ()
    own = next((value for name, value in headers if name == "traceparent"), None)
    ours = run_trace.encode("latin-1")
    if own is not None and own[3:35] == ours[3:35]:
        return headers, ()
    return (("traceparent", ours),), (headers if own is not None else ())


def traceparent_of(span: Span) -> str | None:
    """``span``'s ``traceparent`` as it is sent (None for an invalid span)."""
    if isinstance(span, _Unsampled):
        return next((value.decode("latin-1") for name, value in span.carried
                     if name == "traceparent"), None)  # fmt: skip
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return _traceparent(context).decode("latin-1")


def _carried(context: SpanContext) -> list[tuple[str, bytes]]:
    """The ``traceparent`` (and ``tracestate``) headers of a valid ``context``."""
    carried = [("traceparent", _traceparent(context))]
    if context.trace_state:
        carried.append(("tracestate", context.trace_state.to_header().encode("latin-1")))
    return carried


def _traceparent(context: SpanContext) -> bytes:
    """W3C ``traceparent`` version 00, as the propagator writes it."""
    return b"00-%032x-%016x-%02x" % (context.trace_id, context.span_id, context.trace_flags)


def headers_of(span: Span | None = None) -> list[tuple[str, bytes]]:
    """``traceparent``/``tracestate`` of ``span`` (else the current span) as Kafka
    headers; empty when there is no valid span to carry."""
    carrier = span if span is not None else trace.get_current_span()
    if isinstance(carrier, _Unsampled):
        return list(carrier.carried)
    if span is not None:
        # A given span's own context, formatted here rather than by ``inject`` (see
        # context_of); the current context's baggage is not the span's.
        context = span.get_span_context()
        return _carried(context) if context.is_valid else []
    headers: list[tuple[str, bytes]] = []
    propagate.inject(headers, setter=_setter)
    return headers


def start_record_span(
    name: str, headers: Headers, attributes: Mapping[str, str | int], linked: Headers = ()
) -> Span:
    """A CONSUMER span processing one Kafka record, child of the context ``headers``
    carry (and linked to the one ``linked`` carry, if valid).

    Not made current and not ended: the caller uses ``trace.use_span`` around the
    work and ends it when the record's outcome is known.
    """
    links = None
    if linked:
        other = trace.get_current_span(context_of(linked)).get_span_context()
        links = [Link(other)] if other.is_valid else None
    return _state.tracer.start_span(
        name, context=context_of(headers), kind=SpanKind.CONSUMER, attributes=attributes,
        links=links,
    )  # fmt: skip


def record_attributes(topic: str, partition: int, offset: int) -> dict[str, str | int]:
    """The messaging attributes of processing one Kafka record (semantic conventions)."""
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": str(partition),
        "messaging.kafka.offset": offset,
    }


@contextlib.contextmanager
def record_span(
    name: str, headers: Headers, attributes: Mapping[str, str | int], linked: Headers = ()
) -> Iterator[Span]:
    """:func:`start_record_span`, current inside the block and ended at its end
    (an exception is recorded on it). A record of a trace not sampled gets a stand-in
    that records nothing and carries the record's trace headers on."""
    unsampled = unsampled_span(headers)
    span = start_record_span(name, headers, attributes, linked) if unsampled is None else None
    if span is not None:
        unsampled = stand_in(span)
    if unsampled is not None:
        with trace.use_span(unsampled):
            yield unsampled
        return
    assert span is not None
    with trace.use_span(span, end_on_exit=True, record_exception=True):
        yield span


def instrument_app(app: Any) -> None:
    """Server spans for the requests of a FastAPI ``app`` (named by route template),
    continuing an incoming ``traceparent``; nothing while off. The ops endpoints are
    left out, and so are the per-message spans of a response (live streams send many)."""
    if not _state.enabled:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=_state.provider, excluded_urls="/metrics$,/healthz$,/readyz$",
        exclude_spans=["receive", "send"],
    )  # fmt: skip
