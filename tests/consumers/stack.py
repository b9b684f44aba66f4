"""Fixtures of the worker tests: the real engine and the runs API (uvicorn on a free
port) over the test Kafka and Redis, and a RunsClient with a machine credential.

Imported by the conftest.py of ``tests/consumers`` and ``tests/examples``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from pydantic import SecretStr

from switchyard.bridge.app import create_app
from switchyard.bridge.credentials import write_dev_config
from switchyard.consumers import RunsClient
from switchyard.engine.service import EngineService
from switchyard.engine.templates import JqTemplates, TemplateLimits
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from tests.helpers import until


@dataclass(frozen=True)
class Api:
    url: str
    client_id: str
    client_secret: str


@pytest.fixture
def templates(settings: Settings) -> Iterator[JqTemplates]:
    with JqTemplates(TemplateLimits.from_settings(settings)) as templates:
        yield templates


@pytest.fixture
async def topics(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The session's settings with topics created and a dev auth file for the API."""
    await ensure_topics(settings)
    return settings.model_copy(
        update={
            "auth_file": tmp_path_factory.mktemp("auth") / "auth.json",
            "token_secret": SecretStr("worker-tests-token-secret-0123456789"),
            "trigger_wait_ms": 10_000,
        }
    )


@pytest.fixture
async def engine(topics: Settings, templates: JqTemplates) -> AsyncIterator[EngineService]:
    async with EngineService(topics, templates) as service:
        yield service


@pytest.fixture
async def api(topics: Settings) -> AsyncIterator[Api]:
    """The bridge served over real HTTP on a free port (workers use a real client)."""
    machine = next(c for c in write_dev_config(topics.auth_path) if c.client_id == "dev-machine")
    server = uvicorn.Server(
        uvicorn.Config(create_app(topics), host="127.0.0.1", port=0, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    await until(lambda: _started(server, serving))
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Api(f"http://127.0.0.1:{port}", machine.client_id, machine.client_secret)
    finally:
        server.should_exit = True
        await serving


async def _started(server: uvicorn.Server, serving: asyncio.Task[None]) -> bool:
    if serving.done():
        serving.result()  # startup failed: raise why
    return server.started


@pytest.fixture
async def client(api: Api) -> AsyncIterator[RunsClient]:
    async with RunsClient(api.url, api.client_id, api.client_secret) as client:
        yield client
