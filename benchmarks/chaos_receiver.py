"""The chaos run's receiver of side effects: an HTTP server that deduplicates on the
``Idempotency-Key`` header, as a payment or ticketing API does.

Every call is counted per (path, key) (``calls``); the first call of a key applies
its effect (``applied``: the body it carried), later ones answer 200 and change
nothing. A ``kill -9`` between a call and its report repeats the call (at least
once); the chaos checks that each node-run attempt's effect was applied exactly once.
"""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

IDEMPOTENCY_HEADER = "Idempotency-Key"


class Receiver:
    """Listens on 127.0.0.1 (a port of its own); ``url(path)`` is where to call."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = Counter[tuple[str, str]]()
        self.applied: dict[tuple[str, str], bytes] = {}
        # Calls that carried no key: nothing can deduplicate them, so each is a defect.
        self.unkeyed: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.receive(self.path, self.headers.get(IDEMPOTENCY_HEADER), body)
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_: Any) -> None:
                return

        # A backlog of 5 (the default) resets connections when a restarted executor
        # sends its backlog at once; a real receiver listens with more.
        ThreadingHTTPServer.request_queue_size = 256
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"{self.base}/{path}"

    def receive(self, path: str, key: str | None, body: bytes) -> None:
        path = path.lstrip("/")
        with self.lock:
            if not key:
                self.unkeyed.append(path)
                return
            self.calls[(path, key)] += 1
            # The effect, once per key: a repeated call finds it applied.
            self.applied.setdefault((path, key), body)

    def repeated(self, path: str) -> int:
        """Calls beyond the first of their key, on ``path``."""
        with self.lock:
            return sum(n - 1 for (p, _), n in self.calls.items() if p == path)

    def total(self, path: str) -> int:
        with self.lock:
            return sum(n for (p, _), n in self.calls.items() if p == path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
