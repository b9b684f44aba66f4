"""Fixtures of the CLI's tests: the real engine and the API served by uvicorn on a free
port over the test Kafka and Redis, the dev credentials, and ``cli``: the ``switchyard``
command run in-process (in a thread: it runs its own event loop, as the real one does)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import pytest
import uvicorn

from switchyard.bridge.app import create_app
from switchyard.bridge.credentials import write_dev_config
from switchyard.cli.main import main
from switchyard.consumers import RunsClient
from switchyard.schemas.settings import Settings
from tests.consumers.stack import engine, templates, topics  # noqa: F401  (fixtures)
from tests.helpers import until


@dataclass(frozen=True)
class Served:
    url: str
    secrets: dict[str, str]  # client id -> secret: dev-admin, dev-member, dev-machine


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


class _PerThread(io.TextIOBase):
    """``sys.stdout`` or ``sys.stderr`` while the tests run: each command's thread writes
    to its own buffer, so that commands running side by side don't mix their output."""

    def __init__(self, fallback: TextIO) -> None:
        self._fallback = fallback
        self._local = threading.local()

    def claim(self) -> io.StringIO:
        buffer = io.StringIO()
        self._local.buffer = buffer
        return buffer

    def write(self, text: str) -> int:
        target = getattr(self._local, "buffer", None) or self._fallback
        return target.write(text)

    def isatty(self) -> bool:
        return False


@dataclass
class Running:
    """A command running in its thread: what it printed so far, and its end."""

    task: asyncio.Task[Result]
    out: io.StringIO

    async def printed(self, text: str) -> str:
        """Wait until the command has printed ``text``; all it printed so far."""
        return await until(lambda: _now(self.out), lambda so_far: text in so_far)

    async def result(self, within: float = 30.0) -> Result:
        return await asyncio.wait_for(self.task, within)


async def _now(buffer: io.StringIO) -> str:
    return buffer.getvalue()


class Cli:
    """``await cli("runs", "list", ...)``: the exit code and what the command printed;
    ``cli.start(...)`` for one that waits, while the test acts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self._out = _PerThread(sys.stdout)
        self._err = _PerThread(sys.stderr)

    def _install(self) -> None:
        # Here, not in the fixture: pytest's own capture replaces sys.stdout between a
        # test's setup and its call.
        if sys.stdout is not self._out:
            self._out = _PerThread(sys.stdout)
            self._err = _PerThread(sys.stderr)
            self._monkeypatch.setattr(sys, "stdout", self._out)
            self._monkeypatch.setattr(sys, "stderr", self._err)

    def start(self, *argv: str) -> Running:
        self._install()
        claimed: asyncio.Future[io.StringIO] = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()

        def in_thread() -> Result:
            out, err = self._out.claim(), self._err.claim()
            loop.call_soon_threadsafe(claimed.set_result, out)
            try:
                code = main(list(argv))
            except SystemExit as exc:  # argparse's usage errors
                code = int(exc.code or 0)
            return Result(code, out.getvalue(), err.getvalue())

        task = asyncio.ensure_future(asyncio.to_thread(in_thread))
        buffer = io.StringIO()
        running = Running(task, buffer)

        def bind(future: asyncio.Future[io.StringIO]) -> None:
            running.out = future.result()

        claimed.add_done_callback(bind)
        return running

    async def __call__(self, *argv: str) -> Result:
        return await self.start(*argv).result()


@contextlib.asynccontextmanager
async def bridge(settings: Settings, port: int = 0) -> AsyncIterator[int]:
    """The API served by uvicorn on ``port`` (0: a free one); yields the port. Streams
    still open at the stop are cut after a short grace, as a restart would cut them."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
    )
    serving = asyncio.create_task(server.serve())

    async def started() -> bool:
        if serving.done():
            serving.result()  # startup failed: raise why
        return server.started

    await until(started)
    try:
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
async def served(topics: Settings) -> AsyncIterator[Served]:  # noqa: F811
    made = write_dev_config(topics.auth_path)
    async with bridge(topics) as port:
        yield Served(f"http://127.0.0.1:{port}", {c.client_id: c.client_secret for c in made})


@pytest.fixture
async def admin(served: Served) -> AsyncIterator[RunsClient]:
    """The test's own hands on the API: plays the external system that completes nodes."""
    async with RunsClient(served.url, "dev-admin", served.secrets["dev-admin"]) as client:
        yield client


@pytest.fixture
def cli(served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The ``switchyard`` command, in-process. The profile file is the test's own; the
    environment gives the URL and the admin's credentials."""
    monkeypatch.setenv("SWITCHYARD_CLI_CONFIG", str(tmp_path / "profile.json"))
    monkeypatch.setenv("SWITCHYARD_API_URL", served.url)
    monkeypatch.setenv("SWITCHYARD_CLIENT_ID", "dev-admin")
    monkeypatch.setenv("SWITCHYARD_CLIENT_SECRET", served.secrets["dev-admin"])
    monkeypatch.delenv("SWITCHYARD_PROFILE", raising=False)
    return Cli(monkeypatch)


@pytest.fixture
def wf_id() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"
