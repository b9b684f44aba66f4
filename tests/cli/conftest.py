"""Fixtures of the CLI's tests: the real engine and the API served by uvicorn on a free
port over the test Kafka and Redis, the dev credentials, and ``cli``: the ``switchyard``
command run in-process (in a thread: it runs its own event loop, as the real one does)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

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


Cli = Callable[..., Awaitable[Result]]


@pytest.fixture
async def served(topics: Settings) -> AsyncIterator[Served]:  # noqa: F811
    made = write_dev_config(topics.auth_path)
    server = uvicorn.Server(
        uvicorn.Config(create_app(topics), host="127.0.0.1", port=0, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())

    async def started() -> bool:
        if serving.done():
            serving.result()  # startup failed: raise why
        return server.started

    await until(started)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(f"http://127.0.0.1:{port}", {c.client_id: c.client_secret for c in made})
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
async def admin(served: Served) -> AsyncIterator[RunsClient]:
    """The test's own hands on the API: plays the external system that completes nodes."""
    async with RunsClient(served.url, "dev-admin", served.secrets["dev-admin"]) as client:
        yield client


@pytest.fixture
def cli(
    served: Served,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Cli:
    """``await cli("runs", "list", ...)``: the exit code and what it printed. The profile
    file is the test's own; the environment gives the URL and the admin's credentials."""
    monkeypatch.setenv("SWITCHYARD_CLI_CONFIG", str(tmp_path / "profile.json"))
    monkeypatch.setenv("SWITCHYARD_API_URL", served.url)
    monkeypatch.setenv("SWITCHYARD_CLIENT_ID", "dev-admin")
    monkeypatch.setenv("SWITCHYARD_CLIENT_SECRET", served.secrets["dev-admin"])
    monkeypatch.delenv("SWITCHYARD_PROFILE", raising=False)
    capsys.readouterr()

    async def run(*argv: str) -> Result:
        code = await asyncio.to_thread(main, list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def wf_id() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"
