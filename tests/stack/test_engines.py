"""`switchyard stack up --engines N`: N engine processes in one group, each with its own
static member id and ops port (on the single-node stack, on ports of its own)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from switchyard.cli.main import build_parser, main
from switchyard.cli.stack import processes
from switchyard.cli.stack.full import environment, full_stack
from switchyard.cli.stack.profile import StackProfile
from switchyard.cli.stack.services import PythonService
from switchyard.schemas.settings import Settings
from tests.conftest import REPO
from tests.helpers import until
from tests.ports import free_port, free_ports, stack_up_on_free_ports

pytestmark = pytest.mark.integration


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}


async def _member_ids(bootstrap: str, group: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    # (error_code, group, state, protocol_type, protocol, members, ...); a static member's
    # id is its group.instance.id, a dash and a uuid the coordinator made.
    [described] = response.groups
    return sorted(str(member[0]) for member in described[5])


def test_engines_2_runs_two_engines_with_distinct_instance_ids_and_ops_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"engines-{uuid.uuid4().hex[:6]}."

    def environment() -> dict[str, str]:
        kafka_port = free_port()
        return {
            # A home per attempt: a broker's data is formatted with its ports.
            "SWITCHYARD_HOME": str(tmp_path / f"stack-{kafka_port}"),
            "SWITCHYARD_CACHE_HOME": str(REPO / ".switchyard" / "cache"),
            "SWITCHYARD_KAFKA_PORT": str(kafka_port),
            "SWITCHYARD_KAFKA_CONTROLLER_PORT": str(free_port()),
            "SWITCHYARD_REDIS_PORT": str(free_port()),
            "SWITCHYARD_KAFKA_HEAP": "256m",
            "SWITCHYARD_TOPIC_PREFIX": prefix,
            "SWITCHYARD_BRIDGE_PORT": str(free_port()),
            # Engine i serves its ops endpoints on the engine ops port + 10·(i-1).
            "SWITCHYARD_ENGINE_OPS_PORT": str(free_ports(2, apart=10)),
            # The other services' ops endpoints are not what this test is about: not
            # served, so they cannot collide with another stack on this machine.
            **{
                f"SWITCHYARD_{n}_OPS_PORT": "0"
                for n in ("EXECUTOR", "TIMERS", "SCHEDULER", "TRIGGERS")
            },
        }

    argv = ["stack", "up", "--engines", "2"]
    env = stack_up_on_free_ports(argv, environment, monkeypatch, capsys)
    kafka_port, engine_ops = (int(env[f"SWITCHYARD_{n}_PORT"]) for n in ("KAFKA", "ENGINE_OPS"))
    settings = Settings()
    pids: dict[str, int] = {}
    try:
        capsys.readouterr()
        assert main(["stack", "status"]) == 0
        out = capsys.readouterr().out
        for name, port in (("engine-1", engine_ops), ("engine-2", engine_ops + 10)):
            [line] = [line for line in out.splitlines() if line.startswith(f"{name} ")]
            assert f"http://127.0.0.1:{port}/metrics" in line
            pids[name] = int(line.split("pid")[1].split()[0])
        assert not [line for line in out.splitlines() if line.startswith("engine ")]
        ids = {name: _environ(pid)["SWITCHYARD_ENGINE_INSTANCE_ID"] for name, pid in pids.items()}
        assert ids == {"engine-1": "engine-1", "engine-2": "engine-2"}

        bootstrap = f"127.0.0.1:{kafka_port}"
        members = asyncio.run(
            until(lambda: _member_ids(bootstrap, settings.engine_group), lambda m: len(m) == 2)
        )
        assert [m.rsplit("-", 5)[0] for m in members] == ["engine-1", "engine-2"], members
    finally:
        assert main(["stack", "down"]) == 0
    assert not any(processes.is_alive(pid) for pid in pids.values())


def test_engine_services_get_their_own_names_pid_files_and_settings(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, engine_ops_port=9301, engine_instance_id="base")
    _, services = full_stack(settings, StackProfile(engines=3))
    engines = [c for c in services.components if c.spec.name.startswith("engine")]
    assert [c.spec.name for c in engines] == ["engine-1", "engine-2", "engine-3"]
    assert all(isinstance(c, PythonService) for c in engines)
    assert len({c.spec.pid_file for c in engines}) == 3
    assert len({c.spec.marker for c in engines}) == 3
    envs = [dict(c.spec.env or {}) for c in engines]
    assert [e["SWITCHYARD_ENGINE_INSTANCE_ID"] for e in envs] == [
        "engine-1",
        "engine-2",
        "engine-3",
    ]
    assert [e["SWITCHYARD_ENGINE_OPS_PORT"] for e in envs] == ["9301", "9311", "9321"]
    # The one-engine stack is what it was: one `engine`, the stack's own instance id.
    _, single = full_stack(settings, StackProfile())
    [engine] = [c for c in single.components if c.spec.name.startswith("engine")]
    assert engine.spec.name == "engine"
    assert environment(settings)["SWITCHYARD_ENGINE_INSTANCE_ID"] == "base"


@pytest.mark.parametrize("value", ["0", "-1", "two", "17"])
def test_engines_out_of_range_is_refused_naming_the_option(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["stack", "up", "--engines", value])
    assert exit_info.value.code == 2
    assert "--engines: must be a whole number from 1 to 16" in capsys.readouterr().err
