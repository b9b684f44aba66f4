"""Redis going away under a running bridge: its routes answer 503 ``unavailable`` with
``Retry-After``, naming what did not answer, instead of a 500; so does the token
endpoint, whose failure counts live in Redis."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from switchyard.bridge.app import create_app
from switchyard.schemas.settings import Settings
from tests.bridge.support import Api
from tests.helpers import accepts, until
from tests.ports import redis_server

pytestmark = pytest.mark.integration


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own."""
    with redis_server(tmp_path) as found:
        yield found


async def test_a_route_answers_503_naming_redis_once_redis_is_gone(
    bridge_settings: Settings, own_redis: tuple[int, subprocess.Popen[bytes]]
) -> None:
    port, server = own_redis
    # A plain single Redis of its own, whatever the session's is (a secured cluster).
    settings = bridge_settings.model_copy(
        update={
            "redis_url": f"redis://127.0.0.1:{port}/0",
            "redis_cluster": False,
            "redis_password": None,
            "redis_ssl_ca_file": None,
            "redis_wait_replicas": 0,
        }
    )

    await until(lambda: accepts(port), within=30)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
            api = Api(client, app)
            assert (await api.call("GET", "/v1/workflows/nope")).status_code == 404
            server.kill()
            server.wait(10)

            async def runs() -> httpx.Response:
                return await api.call("GET", "/v1/workflows/nope")

            # The pool's first request may find its connection closed; then refused.
            gone = await until(runs, lambda r: r.status_code == 503, within=30)
            assert gone.headers["retry-after"] == "1"
            body = gone.json()
            assert body["ok"] is False
            assert body["error"] == "unavailable"
            assert body["message"].startswith("Redis did not answer (ConnectionError)")
            token = await client.post(
                "/v1/auth/access_token", json={"clientId": "machine", "clientSecret": "wrong"}
            )
            assert token.status_code == 503, token.text
            assert token.json()["error"] == "unavailable"
