"""`switchyard stack up --cluster --secure`: the launcher's cluster with TLS and passwords
on every server (three brokers on SASL_SSL with SCRAM, six Redis nodes on TLS only
behind a password) and the whole stack of Switchyard's processes on it, up once for the
module on ports of its own. The demo runs a workflow through it end to end; clients
without TLS or with a wrong password are refused; the passwords stay out of files
others can read and out of every process's command line."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from switchyard.cli.main import main
from switchyard.cli.stack import processes
from switchyard.cli.stack.full import local_settings
from switchyard.cli.stack.profile import StackProfile
from switchyard.schemas.settings import Settings
from switchyard.topics.connection import kafka_options
from tests.conftest import REPO
from tests.ports import free_port, on_free_ports

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Fixed (the nodes' ports are consecutive), below Linux's ephemeral range and clear of
# test_cluster_stack.py's (31092.., 31202.., 31379.., 32379..).
KAFKA_PORT = 30092  # brokers on 30092..30094
CONTROLLER_PORT = 30192  # controllers on 30202..30204
REDIS_PORT = 30479  # nodes on 30479..30484, their bus on 31479..31484
SERVICES = ("engine", "executor", "timers", "scheduler", "triggers")


def _ports() -> list[int]:
    kafka = [KAFKA_PORT + i for i in range(3)] + [CONTROLLER_PORT + 10 + i for i in range(3)]
    redis_ports = [REDIS_PORT + i for i in range(6)]
    return kafka + redis_ports + [p + 1000 for p in redis_ports]


@dataclass(frozen=True)
class SecuredStack:
    settings: Settings  # as the stack's own processes connect
    home: Path
    up_output: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredStack]:
    home: Path = tmp_path_factory.mktemp("secure") / "stack"
    busy = [p for p in _ports() if processes.port_open("127.0.0.1", p)]
    assert not busy, f"ports the secured stack test needs are in use: {busy}"
    env = {
        "SWITCHYARD_HOME": str(home),
        "SWITCHYARD_CACHE_HOME": str(REPO / ".switchyard" / "cache"),
        "SWITCHYARD_KAFKA_PORT": str(KAFKA_PORT),
        "SWITCHYARD_KAFKA_CONTROLLER_PORT": str(CONTROLLER_PORT),
        "SWITCHYARD_REDIS_PORT": str(REDIS_PORT),
        "SWITCHYARD_TOPIC_PREFIX": f"secure-{uuid.uuid4().hex[:6]}.",
        "SWITCHYARD_TEMPLATE_WORKERS": "1",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        # Not from the test session's environment: the stack's own.
        patch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)

        def up() -> str:
            # The services' ports, free a moment ago: again on others if one was taken
            # before its process bound it (the fixed ports above are checked free).
            patch.setenv("SWITCHYARD_BRIDGE_PORT", str(free_port()))
            for n in SERVICES:
                patch.setenv(f"SWITCHYARD_{n.upper()}_OPS_PORT", str(free_port()))
            printed, said = io.StringIO(), io.StringIO()  # module fixtures get no capsys
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(said):
                code = main(["stack", "up", "--cluster", "--secure"])
            print(printed.getvalue())
            if code != 0:
                main(["stack", "down"])
                raise RuntimeError(f"stack up failed: {said.getvalue()}")
            return printed.getvalue()

        try:
            output = on_free_ports(up)
            local = local_settings(Settings(), StackProfile(cluster=True, secure=True))
            yield SecuredStack(local, home, output)
        finally:
            main(["stack", "down"])


def test_up_says_how_to_connect_and_every_process_is_ready(
    stack: SecuredStack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "secured: Kafka SASL_SSL (switchyard, SCRAM-SHA-512), Redis TLS" in stack.up_output
    assert f"CA {stack.home.resolve() / 'tls' / 'ca.pem'}" in stack.up_output
    assert "redis cluster: created (3 masters, 1 replica each)" in stack.up_output
    assert "can't log in to a --secure stack's Kafka" in stack.up_output
    capsys.readouterr()
    assert main(["stack", "status"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}
    # The status line's node detail comes from a secured admin client and a TLS client.
    for i in range(1, 4):
        assert f"node {i}, in metadata, in ISR of" in lines[f"kafka-{i}"]
    roles = [lines[f"redis-{i}"] for i in range(1, 7)]
    assert all(f"rediss://127.0.0.1:{REDIS_PORT + i}/0" in roles[i] for i in range(6))
    assert sum("  master" in line for line in roles) == 3
    assert sum("  replica of :" in line for line in roles) == 3
    for name in (*SERVICES, "bridge"):
        assert lines[name].endswith("  ready"), lines[name]


def test_the_demo_runs_a_workflow_end_to_end_on_the_secured_cluster(
    stack: SecuredStack, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "deploy (KAFKA) COMPLETED SUCCESS" in out
    assert "is_production (CONDITION) COMPLETED SUCCESS" in out


def test_kafka_refuses_a_client_without_tls_or_with_a_wrong_password(
    stack: SecuredStack, caplog: pytest.LogCaptureFixture
) -> None:
    async def starts(**options: object) -> bool:
        admin = AIOKafkaAdminClient(**options, request_timeout_ms=5000)
        try:
            await asyncio.wait_for(admin.start(), 15)
            await asyncio.wait_for(admin.describe_cluster(), 15)
        except (KafkaError, TimeoutError):
            return False
        finally:
            await admin.close()
        return True

    bootstrap = f"127.0.0.1:{KAFKA_PORT}"
    good = kafka_options(stack.settings)
    assert asyncio.run(starts(**good)) is True
    assert asyncio.run(starts(bootstrap_servers=bootstrap)) is False
    assert asyncio.run(starts(**{**good, "sasl_plain_password": "wrong"})) is False
    assert "SaslAuthenticationFailed" in caplog.text


def test_redis_refuses_a_client_without_tls_or_without_the_password(stack: SecuredStack) -> None:
    ca = str(stack.home / "tls" / "ca.pem")
    password = stack.settings.redis_password
    assert password is not None
    good = redis.Redis(host="127.0.0.1", port=REDIS_PORT, password=password.get_secret_value(),
                       ssl=True, ssl_ca_certs=ca, socket_timeout=5)  # fmt: skip
    plain = redis.Redis(host="127.0.0.1", port=REDIS_PORT, socket_timeout=5)
    anonymous = redis.Redis(host="127.0.0.1", port=REDIS_PORT, ssl=True, ssl_ca_certs=ca,
                            socket_timeout=5)  # fmt: skip
    try:
        assert good.cluster("INFO")["cluster_state"] == "ok"
        with pytest.raises(redis.ConnectionError):
            plain.ping()
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
    finally:
        for client in (good, plain, anonymous):
            client.close()


def test_the_passwords_stay_private(stack: SecuredStack) -> None:
    saved = json.loads((stack.home / "stack-secrets.json").read_text())
    passwords = [saved["kafka_password"], saved["redis_password"]]
    private = [stack.home / "stack-secrets.json", stack.home / "tls" / "server.key",
               *stack.home.glob("data/kafka-*/server.properties"),
               *stack.home.glob("data/redis-*/secure.conf")]  # fmt: skip
    assert len(private) == 1 + 1 + 3 + 6
    assert all(path.stat().st_mode & 0o077 == 0 for path in private), [
        (str(p), oct(p.stat().st_mode)) for p in private
    ]
    pids = [int(p.read_text()) for p in (stack.home / "run").glob("*.pid")]
    assert len(pids) == 6 + 3 + len(SERVICES) + 1
    for pid in pids:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert not any(p in command_line for p in passwords), f"a password in pid {pid}'s argv"
    # The services are given theirs by environment, which only their owner can read.
    engine_pid = int((stack.home / "run" / "engine.pid").read_text())
    environ = Path(f"/proc/{engine_pid}/environ").read_bytes().decode(errors="replace")
    assert f"SWITCHYARD_KAFKA_SASL_PASSWORD={saved['kafka_password']}" in environ
    assert "SWITCHYARD_REDIS_URL=rediss://" in environ
    assert os.stat(f"/proc/{engine_pid}/environ").st_mode & 0o077 == 0


def test_a_second_up_leaves_it_alone_and_up_without_secure_is_refused(
    stack: SecuredStack, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["stack", "up", "--cluster", "--secure"]) == 0
    out = capsys.readouterr().out
    assert "redis cluster: already formed" in out
    assert "bridge: already running" in out
    assert main(["stack", "up", "--cluster"]) == 2
    assert "a secured cluster stack with 1 engine(s) runs in" in capsys.readouterr().err
