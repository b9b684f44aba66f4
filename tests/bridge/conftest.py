"""Fixtures of the bridge's tests: the app over real Kafka and Redis, the real engine,
credentials for each kind of actor, and sample workflows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from switchyard.bridge.app import create_app
from switchyard.bridge.credentials import hash_secret
from switchyard.engine.service import EngineService
from switchyard.engine.store.client import redis_client
from switchyard.engine.templates import JqTemplates, TemplateLimits
from switchyard.engine.trigger_matcher import TriggerMatcher
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from switchyard.topics.producer import EventProducer
from tests.bridge.support import SECRET, TOKEN_SECRET, Api

ACTORS: dict[str, tuple[str, dict[str, Any]]] = {
    # client id: (kind, entry)
    "admin": ("users", {"email": "admin@example.com", "role": "Admin", "teams": []}),
    "member": ("users", {"email": "member@example.com", "role": "Member", "teams": ["dev"]}),
    "other": ("users", {"email": "other@example.com", "role": "Member", "teams": ["ops"]}),
    "machine": ("machines", {"name": "ci-bot"}),
}


@pytest.fixture(scope="session")
def auth_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config: dict[str, list[dict[str, Any]]] = {"users": [], "machines": []}
    secret_hash = hash_secret(SECRET)
    for client_id, (kind, entry) in ACTORS.items():
        config[kind].append({**entry, "clientId": client_id, "clientSecretHash": secret_hash})
    path = tmp_path_factory.mktemp("auth") / "auth.json"
    path.write_bytes(orjson.dumps(config))
    return path


@pytest.fixture
async def bridge_settings(settings: Settings, auth_file: Path) -> Settings:
    await ensure_topics(settings)
    return settings.model_copy(
        update={
            "auth_file": auth_file,
            "token_secret": SecretStr(TOKEN_SECRET),
            "trigger_wait_ms": 10_000,
        }
    )


@pytest.fixture
async def engine(bridge_settings: Settings) -> AsyncIterator[EngineService]:
    with JqTemplates(TemplateLimits.from_settings(bridge_settings)) as templates:
        async with EngineService(bridge_settings, templates) as service:
            yield service


@pytest.fixture
async def api(bridge_settings: Settings) -> AsyncIterator[Api]:
    app = create_app(bridge_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
            yield Api(client, app)


@pytest.fixture
def wf_id() -> str:
    return f"wf-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def matcher(bridge_settings: Settings) -> AsyncIterator[TriggerMatcher]:
    """The trigger matcher, in a consumer group of its own (sessions share the broker)."""
    settings = bridge_settings.model_copy(
        update={"triggers_group": f"triggers-{uuid.uuid4().hex[:8]}"}
    )
    client = redis_client(settings)
    with JqTemplates(TemplateLimits.from_settings(settings)) as templates:
        async with EventProducer(settings) as producer:
            service = TriggerMatcher(settings, client, producer, templates)
            await service.start()
            try:
                yield service
            finally:
                await service.stop()
    await client.aclose()
