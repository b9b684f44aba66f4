"""A minimal OTLP/HTTP trace receiver for the telemetry benchmark: it counts spans.

    python -m benchmarks.otlp_sink --port 4318 [--ready-file F]

``POST /v1/traces`` (protobuf, gzip or not) is decoded as an
``ExportTraceServiceRequest``; its spans are counted per ``service.name`` and the answer
is 200 with an empty ``ExportTraceServiceResponse``. ``GET /counts`` gives the totals
as JSON. It runs in a process of its own (:class:`SinkProcess`), so decoding never
takes time from the event loops being measured; :func:`serve` starts one in a thread.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_EMPTY = ExportTraceServiceResponse().SerializeToString()


@dataclass
class Counts:
    """What the sink has received since it started."""

    requests: int = 0
    rejected: int = 0  # bodies that were not an ExportTraceServiceRequest
    spans: int = 0
    bytes: int = 0
    by_service: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: ExportTraceServiceRequest, size: int) -> None:
        with self.lock:
            self.requests += 1
            self.bytes += size
            for resource_spans in request.resource_spans:
                service = next(
                    (a.value.string_value for a in resource_spans.resource.attributes
                     if a.key == "service.name"), "?",
                )  # fmt: skip
                n = sum(len(scope.spans) for scope in resource_spans.scope_spans)
                self.spans += n
                self.by_service[service] = self.by_service.get(service, 0) + n

    def as_dict(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": self.requests, "rejected": self.rejected, "spans": self.spans,
                    "bytes": self.bytes, "by_service": dict(self.by_service)}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the exporter reuses its connection
    server: _SinkServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?")[0] != "/v1/traces":
            self._answer(404, b"", "text/plain")
            return
        try:
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest.FromString(body)
        except (DecodeError, OSError, EOFError):
            with self.server.counts.lock:
                self.server.counts.rejected += 1
            self._answer(400, b"", "text/plain")
            return
        self.server.counts.add(request, len(body))
        self._answer(200, _EMPTY, "application/x-protobuf")

    def do_GET(self) -> None:
        if self.path != "/counts":
            self._answer(404, b"", "text/plain")
            return
        self._answer(200, json.dumps(self.server.counts.as_dict()).encode(), "application/json")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per export would be most of the sink's work


class _SinkServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int) -> None:
        super().__init__((host, port), _Handler)
        self.counts = Counts()


def serve(host: str = "127.0.0.1", port: int = 0) -> _SinkServer:
    """A sink serving in a daemon thread; ``server_address[1]`` is its port,
    ``shutdown()`` stops it."""
    server = _SinkServer(host, port)
    threading.Thread(target=server.serve_forever, name="otlp-sink", daemon=True).start()
    return server


class SinkProcess:
    """``python -m benchmarks.otlp_sink`` as a child process, with its counts over HTTP."""

    def __init__(self, ready_file: Path, port: int = 0) -> None:
        self.ready_file = ready_file
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The OTLP endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT``): the exporter adds /v1/traces."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        if self._process is not None:
            raise RuntimeError("the OTLP sink is already started")
        self.ready_file.unlink(missing_ok=True)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.otlp_sink", "--port", str(self.port),
             "--ready-file", str(self.ready_file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,  # never the caller's pipes
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists() or not self.ready_file.read_text().strip():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the OTLP sink did not start")
            time.sleep(0.05)
        self.port = int(json.loads(self.ready_file.read_text())["port"])

    async def counts(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{self.endpoint}/counts", timeout=10)
            response.raise_for_status()
            counts: dict[str, Any] = response.json()
            return counts

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)
        self._process = None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.otlp_sink", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument("--ready-file", type=Path, help="where to write {'port': N} once up")
    args = parser.parse_args(argv)
    server = _SinkServer(args.host, args.port)
    if args.ready_file is not None:
        partial = args.ready_file.with_suffix(".partial")
        partial.write_text(json.dumps({"port": server.server_address[1]}))
        partial.replace(args.ready_file)  # whole or absent, never half-written
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
