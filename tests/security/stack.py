"""The bridge and the real engine in-process over real Kafka and Redis, for the security
and fuzz tests: actors of every kind (and the tokens the matrix needs), secrets, the
engine's bounded jq templates.

Module-scoped where a module shares one stack (the authorization matrix, the
OpenAPI fuzz run): starting the engine takes about a second.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
from fastapi import FastAPI
from pydantic import SecretStr

from switchyard.bridge.app import create_app
from switchyard.bridge.credentials import hash_secret
from switchyard.bridge.tokens import TokenSigner
from switchyard.engine.service import EngineService
from switchyard.engine.templates import JqTemplates, TemplateLimits
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from tests.bridge.support import SECRET, TOKEN_SECRET, Api
from tests.conftest import REPO, TEST_HOME, Services

ACTORS: dict[str, tuple[str, dict[str, Any]]] = {
    # client id: (kind, entry). "teammate" is in the team the test workflows permit.
    "admin": ("users", {"email": "admin@example.com", "role": "Admin", "teams": []}),
    "member": ("users", {"email": "member@example.com", "role": "Member", "teams": ["dev"]}),
    "teammate": ("users", {"email": "teammate@example.com", "role": "Member", "teams": ["ops"]}),
    "machine": ("machines", {"name": "ci-bot"}),
}
PERMITTED_TEAM = "ops"
OTHER_TOKEN_SECRET = "another-token-secret-fedcba9876543210"


def write_auth_file(folder: Path) -> Path:
    config: dict[str, list[dict[str, Any]]] = {"users": [], "machines": []}
    secret_hash = hash_secret(SECRET)
    for client_id, (kind, entry) in ACTORS.items():
        config[kind].append({**entry, "clientId": client_id, "clientSecretHash": secret_hash})
    path = folder / "auth.json"
    path.write_bytes(orjson.dumps(config))
    return path


def stack_settings(services: Services, tag: str, auth_file: Path, **update: Any) -> Settings:
    """Settings for one module's stack: its own topic prefix, the test actors."""
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": services.kafka_bootstrap,
        "redis_url": services.redis_url,
        "topic_prefix": f"test-{tag}.",
        "home": TEST_HOME,
        "cache_home": REPO / ".switchyard" / "cache",
        "auth_file": auth_file,
        "token_secret": SecretStr(TOKEN_SECRET),
        "trigger_wait_ms": 10_000,
        "template_timeout_ms": 500,
    }
    return Settings(**{**values, **update})


@dataclass
class Stack:
    api: Api
    settings: Settings
    engine: EngineService | None

    def bad_tokens(self) -> dict[str, str | None]:
        """The ``Authorization`` header of each kind of invalid caller (None: no header)."""
        admin = self.api.ctx.credentials.actor("admin")
        assert admin is not None
        ttl = self.api.ctx.signer.ttl_seconds
        expired = self.api.ctx.signer.issue(admin, now=time.time() - ttl - 60)
        foreign = TokenSigner(OTHER_TOKEN_SECRET, ttl).issue(admin)
        unsigned = jwt.encode(
            {"sub": "admin", "iss": "switchyard", "exp": int(time.time()) + 600},
            key=None,
            algorithm="none",
        )
        return {
            "none": None,
            "malformed": "Bearer not.a.jwt",
            "expired": f"Bearer {expired}",
            "foreign": f"Bearer {foreign}",
            "unsigned": f"Bearer {unsigned}",
        }


@contextlib.asynccontextmanager
async def running_stack(settings: Settings, *, engine: bool = True) -> AsyncIterator[Stack]:
    """The bridge app behind httpx (ASGI, in-process) and, if asked, the engine."""
    await ensure_topics(settings)
    app: FastAPI = create_app(settings)
    async with contextlib.AsyncExitStack() as stack:
        service: EngineService | None = None
        if engine:
            templates = stack.enter_context(JqTemplates(TemplateLimits.from_settings(settings)))
            service = await stack.enter_async_context(EngineService(settings, templates))
        await stack.enter_async_context(app.router.lifespan_context(app))
        transport = httpx.ASGITransport(app=app)
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://bridge")
        )
        yield Stack(Api(client, app), settings, service)
