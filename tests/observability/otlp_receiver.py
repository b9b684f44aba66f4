"""A small OTLP/HTTP trace receiver for tests: ``POST /v1/traces`` with a protobuf
``ExportTraceServiceRequest``, each span kept with its resource's ``service.name``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.helpers import LocalHandler, serving


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, ids in hex as in ``traceparent``."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[str]
    # (trace id, span id) of each span it links to.
    links: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Received:
    """What the receiver got so far: the requests its server thread recorded, read as
    spans once each (a span seen twice is the same object)."""

    requests: list[ExportTraceServiceRequest]
    _spans: list[ReceivedSpan] = field(default_factory=list)
    _read: int = 0

    def snapshot(self) -> list[ReceivedSpan]:
        arrived = list(self.requests)
        for request in arrived[self._read :]:
            for resource_spans in request.resource_spans:
                service = str(_attributes(resource_spans.resource.attributes).get("service.name"))
                for scope_spans in resource_spans.scope_spans:
                    self._spans += [_span(service, span) for span in scope_spans.spans]
        self._read = len(arrived)
        return list(self._spans)


def _span(service: str, span: Any) -> ReceivedSpan:
    return ReceivedSpan(
        service=service, name=span.name, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex(), kind=span.kind, start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano, attributes=_attributes(span.attributes),
        events=[event.name for event in span.events],
        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
    )  # fmt: skip


class _Handler(LocalHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        if self.path != "/v1/traces":
            self.send_response(404)
            self.end_headers()
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.record(request)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, Received]]:
    """A receiver on a free loopback port: its base URL (``OTEL_EXPORTER_OTLP_ENDPOINT``)
    and what it has received."""
    with serving(_Handler) as (url, requests):
        yield url, Received(requests)
