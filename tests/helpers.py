"""Test helpers: wait on facts, never on sleep."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis

from switchyard.engine.store import keys
from switchyard.schemas.settings import Settings

T = TypeVar("T")


async def until(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], bool] = bool,
    *,
    within: float = 10.0,
    interval: float = 0.02,
) -> T:
    """Await ``probe`` until ``check(value)`` holds; fail with the last value seen."""
    deadline = time.monotonic() + within
    value = await probe()
    while not check(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s; last value: {value!r}")
        await asyncio.sleep(interval)
        value = await probe()
    return value


def private_redis_db(settings: Settings, session_tag: str) -> Settings:
    """``settings`` on a Redis database of this test session's own (1-15).

    Armed timers are one sorted set per database: a timer service of another test
    session on the same Redis would fire this session's timers into its own inbox
    (and remove them). Tests that run a timer service use this.
    """
    if settings.redis_cluster:
        # A cluster has database 0 only; the cluster test session is its one user.
        return settings
    db = 1 + int(session_tag, 16) % 15
    base = settings.redis_url.rsplit("/", 1)[0]
    return settings.model_copy(update={"redis_url": f"{base}/{db}"})


class LocalHandler(BaseHTTPRequestHandler):
    """A test server's handler: ``record`` what it saw, ``answer`` with JSON, quietly."""

    def body(self) -> Any:
        length = int(self.headers.get("content-length") or 0)
        return orjson.loads(self.rfile.read(length)) if length else None

    def record(self, item: Any) -> int:
        """Keep ``item`` in the list ``serving`` yields; how many were kept so far."""
        records: list[Any] = self.server.records  # type: ignore[attr-defined]
        records.append(item)
        return len(records)

    def answer(self, status: int, payload: Any) -> None:
        data = orjson.dumps(payload)
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:  # keep test output clean
        return


@contextmanager
def serving(handler: type[LocalHandler]) -> Iterator[tuple[str, list[Any]]]:
    """A threaded HTTP server on a free loopback port: its base URL and what it recorded."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    records: list[Any] = []
    server.records = records  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", records
    finally:
        server.shutdown()
        server.server_close()


@asynccontextmanager
async def keeping_meta(url: str) -> AsyncIterator[aioredis.Redis]:
    """A client of ``url`` whose store format marker (``sy:meta``) is put back as it
    was once the block ends: tests of the marker change it."""
    redis = aioredis.Redis.from_url(url)
    found = await redis.hgetall(keys.META)
    try:
        yield redis
    finally:
        await redis.delete(keys.META)
        if found:
            await redis.hset(keys.META, items=[part for pair in found.items() for part in pair])
        await redis.aclose()


async def accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts a TCP connection on ``host:port`` now."""
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    return True
