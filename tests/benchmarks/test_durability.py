"""The stack's durability profile (``SWITCHYARD_DURABILITY``) is what the launcher
really starts: read back from the launched Redis (``CONFIG GET``) and broker
(``describe_configs``), not from what was asked for."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest
import redis
import yaml

from benchmarks.durability import broker_flush
from switchyard.schemas.settings import Settings
from tests.conftest import REPO
from tests.ports import launcher_broker, launcher_redis


def _settings(home: Path, durability: str) -> Settings:
    # Ports and URLs are chosen at start (tests/ports.py).
    return Settings(home=home, cache_home=REPO / ".switchyard" / "cache", durability=durability)


def test_an_unknown_profile_is_refused_naming_the_setting() -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        Settings(durability="fast")
    assert "durability" in str(raised.value)
    assert "'default' or 'durable'" in str(raised.value)


@pytest.fixture
def launched_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[redis.Redis]:
    _, server = launcher_redis(_settings(tmp_path, request.param))
    client = redis.Redis.from_url(server.url)
    try:
        yield client
    finally:
        client.close()
        server.stop()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("launched_redis", "fsync"),
    [("default", "everysec"), ("durable", "always")],
    indirect=["launched_redis"],
)
def test_the_launched_redis_fsyncs_as_the_profile_says(
    launched_redis: redis.Redis, fsync: str
) -> None:
    config = launched_redis.config_get("append*")
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == fsync


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_the_launched_broker_flushes_every_message_under_the_durable_profile(
    tmp_path: Path,
) -> None:
    _, broker = launcher_broker(_settings(tmp_path, "durable"))
    try:
        flush = asyncio.run(broker_flush(broker.address))
    finally:
        broker.stop()
    assert flush["log.flush.interval.messages"] == "1"


def _compose_script(service: str) -> str:
    """A compose service's ``sh -c`` script, with compose's ``$$`` escapes undone."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    command = compose["services"][service]["command"]
    assert command[:2] == ["sh", "-c"], command
    assert compose["services"][service]["environment"]["SWITCHYARD_DURABILITY"] == (
        "${SWITCHYARD_DURABILITY:-default}"
    )
    return str(command[2]).replace("$$", "$")


def _run_script(script: str, durability: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``script`` under ``sh`` with the image's program replaced by one that prints its
    arguments and the broker's flush variable."""
    stub = tmp_path / "image-program"
    stub.write_text(
        '#!/bin/sh\necho "args: $*"\necho "flush: ${KAFKA_LOG_FLUSH_INTERVAL_MESSAGES-unset}"\n'
    )
    stub.chmod(0o755)
    script = script.replace("docker-entrypoint.sh", str(stub))
    script = script.replace("/etc/kafka/docker/run", str(stub))
    env = {"PATH": os.environ["PATH"], "SWITCHYARD_DURABILITY": durability}
    return subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True,
                          check=False)  # fmt: skip


@pytest.mark.parametrize(("durability", "fsync"), [("default", "everysec"), ("durable", "always")])
def test_compose_redis_fsyncs_as_the_profile_says(
    durability: str, fsync: str, tmp_path: Path
) -> None:
    done = _run_script(_compose_script("redis"), durability, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"args: redis-server --appendonly yes --appendfsync {fsync} --save" in done.stdout


@pytest.mark.parametrize(("durability", "flush"), [("default", "unset"), ("durable", "1")])
def test_compose_broker_flushes_as_the_profile_says(
    durability: str, flush: str, tmp_path: Path
) -> None:
    done = _run_script(_compose_script("kafka"), durability, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"flush: {flush}" in done.stdout


@pytest.mark.parametrize("service", ["redis", "kafka"])
def test_compose_refuses_an_unknown_profile_naming_the_setting(
    service: str, tmp_path: Path
) -> None:
    done = _run_script(_compose_script(service), "fast", tmp_path)
    assert done.returncode == 2
    assert "SWITCHYARD_DURABILITY: must be default or durable (got 'fast')" in done.stderr
    assert "args:" not in done.stdout
