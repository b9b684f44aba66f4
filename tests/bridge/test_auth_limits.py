"""Abuse of POST /v1/auth/access_token: failed attempts limited per client id and per
address in Redis (429 + Retry-After before any scrypt work), successes never counted,
and a secret verified a moment ago checked again without scrypt."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY

from switchyard.bridge import credentials as credentials_module
from switchyard.bridge.app import create_app
from switchyard.bridge.auth_limits import address_key, client_key
from switchyard.bridge.credentials import VerifiedSecrets, hash_secret
from switchyard.engine.store.client import redis_client
from switchyard.schemas.settings import Settings
from tests.bridge.support import SECRET
from tests.helpers import until

TOKEN = "/v1/auth/access_token"


@dataclass
class Ids:
    """Two client ids of this test's own (Redis counters outlive a test)."""

    a: str
    b: str


@pytest.fixture
def ids() -> Ids:
    tag = uuid.uuid4().hex[:10]
    return Ids(f"a-{tag}", f"b-{tag}")


@pytest.fixture
def limit_settings(bridge_settings: Settings, ids: Ids, tmp_path: Path) -> Settings:
    secret_hash = hash_secret(SECRET)
    machines = [{"name": who, "clientId": who, "clientSecretHash": secret_hash}
                for who in (ids.a, ids.b)]  # fmt: skip
    path = tmp_path / "auth.json"
    path.write_bytes(orjson.dumps({"users": [], "machines": machines}))
    return bridge_settings.model_copy(
        update={
            "auth_file": path,
            "auth_failures_per_client": 3,
            "auth_failures_per_address": 1000,
            "auth_failure_window_seconds": 300,
            "auth_verified_cache_seconds": 0.0,
        }
    )


@pytest.fixture
def scrypt_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every scrypt check of a secret, by stored hash (the wrapper counts, then checks)."""
    calls: list[str] = []
    real = credentials_module.check_secret

    def counted(secret: str, stored: str) -> bool:
        calls.append(stored)
        return real(secret, stored)

    monkeypatch.setattr(credentials_module, "check_secret", counted)
    return calls


def an_address() -> str:
    return ".".join(str(b) for b in uuid.uuid4().bytes[:4])


@asynccontextmanager
async def bridge(settings: Settings, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """One bridge app (its own context, Redis client and cache), called from ``address``."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
            yield client


async def ask(client: httpx.AsyncClient, client_id: str, secret: str) -> httpx.Response:
    return await client.post(TOKEN, json={"clientId": client_id, "clientSecret": secret})


def limited(reason: str) -> float:
    value = REGISTRY.get_sample_value("switchyard_auth_attempts_limited_total", {"reason": reason})
    return value or 0.0


async def test_failures_past_the_client_limit_are_429_without_scrypt(
    limit_settings: Settings, ids: Ids, scrypt_checks: list[str]
) -> None:
    before = limited("client")
    async with bridge(limit_settings, an_address()) as client:
        for _ in range(3):
            assert (await ask(client, ids.a, "wrong")).status_code == 401
        assert len(scrypt_checks) == 3
        for secret in ("wrong", "still wrong", SECRET):
            response = await ask(client, ids.a, secret)
            assert response.status_code == 429, response.text
            retry_after = int(response.headers["Retry-After"])
            assert 1 <= retry_after <= 300
            body = response.json()
            assert body == {
                "ok": False,
                "error": "too_many_requests",
                "message": f"too many failed token requests for clientId {ids.a!r}: 3 in "
                f"300 s; retry in {retry_after} s",
            }
        # The limited attempts, the correct secret's too, cost no scrypt check.
        assert len(scrypt_checks) == 3
    assert limited("client") == before + 3


async def test_another_client_id_from_the_same_address_is_not_under_the_first_ones_limit(
    limit_settings: Settings, ids: Ids
) -> None:
    async with bridge(limit_settings, an_address()) as client:
        for _ in range(4):
            await ask(client, ids.a, "wrong")
        assert (await ask(client, ids.a, SECRET)).status_code == 429
        assert (await ask(client, ids.b, SECRET)).status_code == 200
        assert (await ask(client, ids.b, "wrong")).status_code == 401


async def test_the_address_limit_covers_every_client_id_and_only_that_address(
    limit_settings: Settings, ids: Ids, scrypt_checks: list[str]
) -> None:
    settings = limit_settings.model_copy(update={"auth_failures_per_address": 4})
    address = an_address()
    before = limited("address")
    async with bridge(settings, address) as client:
        unknown = f"nobody-{uuid.uuid4().hex[:8]}"
        for client_id in (ids.a, ids.a, ids.b, unknown):
            assert (await ask(client, client_id, "wrong")).status_code == 401
        checks = len(scrypt_checks)
        response = await ask(client, ids.b, SECRET)
        assert response.status_code == 429
        assert f"for address {address}: 4 in 300 s" in response.json()["message"]
        assert len(scrypt_checks) == checks
    assert limited("address") == before + 1
    async with bridge(settings, an_address()) as elsewhere:
        assert (await ask(elsewhere, ids.b, SECRET)).status_code == 200


async def test_the_limit_holds_across_two_bridges_sharing_redis(
    limit_settings: Settings, ids: Ids
) -> None:
    address = an_address()
    async with bridge(limit_settings, address) as one, bridge(limit_settings, address) as two:
        assert (await ask(one, ids.a, "wrong")).status_code == 401
        assert (await ask(two, ids.a, "wrong")).status_code == 401
        assert (await ask(one, ids.a, "wrong")).status_code == 401
        assert (await ask(two, ids.a, "wrong")).status_code == 429
        assert (await ask(one, ids.a, "wrong")).status_code == 429


async def test_successes_never_count(limit_settings: Settings, ids: Ids) -> None:
    async with bridge(limit_settings, an_address()) as client:
        secrets = ["wrong", SECRET, SECRET, "wrong", SECRET, SECRET, SECRET]
        statuses = [(await ask(client, ids.a, secret)).status_code for secret in secrets]
        assert statuses == [401, 200, 200, 401, 200, 200, 200]
        assert (await ask(client, ids.a, "wrong")).status_code == 401
        assert (await ask(client, ids.a, "wrong")).status_code == 429


async def test_a_burst_of_concurrent_wrong_secrets_gets_only_the_limits_scrypt_checks(
    limit_settings: Settings, ids: Ids, scrypt_checks: list[str]
) -> None:
    async with bridge(limit_settings, an_address()) as client:
        responses = await asyncio.gather(*(ask(client, ids.a, "wrong") for _ in range(20)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [401] * 3 + [429] * 17
    assert len(scrypt_checks) == 3


async def test_the_limit_lifts_when_its_window_ends(limit_settings: Settings, ids: Ids) -> None:
    settings = limit_settings.model_copy(
        update={"auth_failures_per_client": 1, "auth_failure_window_seconds": 1}
    )
    async with bridge(settings, an_address()) as client:
        assert (await ask(client, ids.a, "wrong")).status_code == 401
        assert (await ask(client, ids.a, SECRET)).status_code == 429

        async def status() -> int:
            return (await ask(client, ids.a, SECRET)).status_code

        await until(status, lambda code: code == 200, within=15, interval=0.2)


async def test_a_verified_secret_is_checked_again_without_scrypt(
    limit_settings: Settings, ids: Ids, scrypt_checks: list[str]
) -> None:
    settings = limit_settings.model_copy(update={"auth_verified_cache_seconds": 60.0})
    async with bridge(settings, an_address()) as client:
        first = await ask(client, ids.a, SECRET)
        assert first.status_code == 200
        assert len(scrypt_checks) == 1
        again = await ask(client, ids.a, SECRET)
        assert again.status_code == 200
        assert again.json()["accessToken"]
        assert len(scrypt_checks) == 1
        # A wrong secret never passes as the cached one: it is checked, and fails.
        assert (await ask(client, ids.a, SECRET + "x")).status_code == 401
        assert len(scrypt_checks) == 2
        # The cache is per client id: the other one's first success is checked.
        assert (await ask(client, ids.b, SECRET)).status_code == 200
        assert len(scrypt_checks) == 3


async def test_a_verified_secret_passes_while_its_client_id_is_limited(
    limit_settings: Settings, ids: Ids, scrypt_checks: list[str]
) -> None:
    """An attacker filling a client id's window does not lock out the caller whose
    secret this process verified a moment ago (Port's agent asking before every call)."""
    settings = limit_settings.model_copy(update={"auth_verified_cache_seconds": 60.0})
    async with bridge(settings, an_address()) as client:
        assert (await ask(client, ids.a, SECRET)).status_code == 200
        for _ in range(3):
            assert (await ask(client, ids.a, "wrong")).status_code == 401
        assert (await ask(client, ids.a, "wrong")).status_code == 429
        assert (await ask(client, ids.a, SECRET)).status_code == 200
        assert len(scrypt_checks) == 4


async def test_without_the_cache_every_success_runs_scrypt(
    limit_settings: Settings, ids: Ids, scrypt_checks: list[str]
) -> None:
    async with bridge(limit_settings, an_address()) as client:
        for _ in range(2):
            assert (await ask(client, ids.a, SECRET)).status_code == 200
    assert len(scrypt_checks) == 2


async def test_limits_of_zero_are_off(
    limit_settings: Settings, ids: Ids, scrypt_checks: list[str]
) -> None:
    settings = limit_settings.model_copy(
        update={"auth_failures_per_client": 0, "auth_failures_per_address": 0}
    )
    async with bridge(settings, an_address()) as client:
        for _ in range(5):
            assert (await ask(client, ids.a, "wrong")).status_code == 401
    assert len(scrypt_checks) == 5


@pytest.mark.parametrize(
    ("field", "value"),
    [("auth_failures_per_client", -1), ("auth_failure_window_seconds", 0),
     ("auth_verified_cache_seconds", -1)],
)  # fmt: skip
def test_settings_refuse_bad_values(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        Settings.model_validate({field: value})


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_verified_secrets_expire_and_follow_the_stored_hash() -> None:
    clock = FakeClock()
    verified = VerifiedSecrets(60, clock)
    verified.remember("ci", "s3cret", "hash-1")
    assert verified.holds("ci", "s3cret", "hash-1")
    assert not verified.holds("ci", "s3cret-not", "hash-1")
    assert not verified.holds("other", "s3cret", "hash-1")
    # A changed credential (another stored hash) forgets what was verified against the old.
    assert not verified.holds("ci", "s3cret", "hash-2")
    assert not verified.holds("ci", "s3cret", "hash-1")
    verified.remember("ci", "s3cret", "hash-1")
    clock.now += 59.9
    assert verified.holds("ci", "s3cret", "hash-1")
    clock.now += 0.1
    assert not verified.holds("ci", "s3cret", "hash-1")


def test_verified_secrets_keep_no_secret_and_nothing_when_off() -> None:
    verified = VerifiedSecrets(60)
    verified.remember("ci", "s3cret-value", "hash-1")
    assert b"s3cret-value" not in repr(vars(verified)).encode()
    off = VerifiedSecrets(0)
    off.remember("ci", "s3cret", "hash-1")
    assert not off.holds("ci", "s3cret", "hash-1")


async def test_the_window_keys_expire_and_a_success_leaves_no_count(
    limit_settings: Settings, ids: Ids
) -> None:
    address = an_address()
    async with bridge(limit_settings, address) as client:
        await ask(client, ids.a, "wrong")
        await ask(client, ids.b, SECRET)
    redis = redis_client(limit_settings)
    try:
        for key in (client_key(ids.a), address_key(address)):
            ttl = await redis.ttl(key)
            assert 0 < ttl <= 300, (key, ttl)
        assert await redis.get(client_key(ids.a)) == b"1"
        # b's success gave its place back: its window holds no failure.
        assert await redis.get(client_key(ids.b)) == b"0"
        assert await redis.get(address_key(address)) == b"1"
    finally:
        await redis.aclose()
