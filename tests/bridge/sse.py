"""A bridge on a real port (uvicorn) and a Server-Sent Events reader, for stream tests.

httpx's ASGI transport collects a whole response before returning it, so a stream
that never ends can't be read through it: these tests talk to uvicorn over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI

from switchyard.bridge.app import create_app
from switchyard.schemas.settings import Settings
from tests.helpers import until


@dataclass(frozen=True)
class Message:
    """One SSE message (``comment`` for a ``: …`` line on its own)."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    comment: str | None = None

    def json(self) -> Any:
        assert self.data is not None, self
        return orjson.loads(self.data)


@dataclass
class Server:
    """uvicorn serving ``app`` on 127.0.0.1 and a free port."""

    app: FastAPI
    lifespan: bool = True
    url: str = ""
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=0, log_level="warning",
            lifespan="on" if self.lifespan else "off",
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        server = self._server
        await until(lambda: _ready(server, self._task))
        assert self._task is not None
        assert not self._task.done(), "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Cut every open connection (as a crash would for its clients), then exit."""
        server, task = self._server, self._task
        if server is None or task is None:
            return
        for connection in list(server.server_state.connections):
            connection.transport.abort()
        server.should_exit = True
        await task
        self._server = self._task = None


async def _ready(server: uvicorn.Server, task: asyncio.Task[None] | None) -> bool:
    return server.started or (task is not None and task.done())


@contextlib.asynccontextmanager
async def live_bridge(settings: Settings) -> AsyncIterator[Server]:
    """A bridge process of its own (its own app, Redis pool, producer) on a port."""
    server = Server(create_app(settings))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[Server]:
    """``app``, whose lifespan already runs, also on a port."""
    server = Server(app, lifespan=False)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def messages(response: httpx.Response) -> AsyncIterator[Message]:
    """The messages of an SSE response, as they arrive."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if fields:
                yield Message(fields.get("id"), fields.get("event"), fields.get("data"))
            fields = {}
        elif line.startswith(":"):
            yield Message(comment=line[1:].strip())
        else:
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value


async def take(
    source: AsyncIterator[Message], count: int, *, skip_comments: bool = True
) -> list[Message]:
    """The next ``count`` messages (heartbeats left out unless asked)."""
    found: list[Message] = []
    async for message in source:
        if skip_comments and message.comment is not None:
            continue
        found.append(message)
        if len(found) == count:
            break
    return found


async def take_until(
    source: AsyncIterator[Message], done: Any, *, within: float = 20.0
) -> list[Message]:
    """Messages (no heartbeats) up to and including the first for which ``done`` holds."""

    async def collect() -> list[Message]:
        found: list[Message] = []
        async for message in source:
            if message.comment is not None:
                continue
            found.append(message)
            if done(message):
                return found
        raise AssertionError(f"the stream ended before the awaited message; got {found}")

    return await asyncio.wait_for(collect(), within)
