"""`switchyard stack up | status | down` against real processes, on ports of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchyard.cli.main import main
from switchyard.cli.stack import processes
from switchyard.cli.stack.errors import ToolMissing
from switchyard.cli.stack.launcher import Stack
from switchyard.cli.stack.redis import RedisServer
from switchyard.schemas.settings import Settings
from switchyard.topics.registry import TopicRegistry
from tests.conftest import REPO
from tests.ports import free_port, stack_up_on_free_ports

pytestmark = pytest.mark.integration


def _settings(home: Path) -> Settings:
    return Settings(
        home=home,
        cache_home=REPO / ".switchyard" / "cache",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        redis_port=free_port(),
        kafka_heap="256m",
    )


@pytest.fixture
def own_settings(tmp_path: Path) -> Settings:
    # Never started here: these tests bind none of its ports.
    return _settings(tmp_path / "stack")


def _up_on_free_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Settings:
    """``switchyard stack up --infra-only`` on ports free a moment ago (again on others
    while one is taken before Kafka or Redis binds it): the settings it ran with."""
    tried: list[Settings] = []

    def environment() -> dict[str, str]:
        tried.append(_settings(tmp_path / f"stack-{len(tried)}"))
        settings = tried[-1]
        return {
            "SWITCHYARD_HOME": str(settings.home),
            "SWITCHYARD_CACHE_HOME": str(settings.cache_dir),
            "SWITCHYARD_KAFKA_PORT": str(settings.kafka_port),
            "SWITCHYARD_KAFKA_CONTROLLER_PORT": str(settings.kafka_controller_port),
            "SWITCHYARD_REDIS_PORT": str(settings.redis_port),
            "SWITCHYARD_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{settings.kafka_port}",
            "SWITCHYARD_TOPIC_PREFIX": "launcher-test.",
            "SWITCHYARD_KAFKA_HEAP": "256m",
        }

    stack_up_on_free_ports(["stack", "up", "--infra-only"], environment, monkeypatch, capsys)
    return tried[-1]


def test_up_status_down_cycle_and_up_is_idempotent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    own_settings = _up_on_free_ports(tmp_path, monkeypatch, capsys)
    stack = Stack(own_settings)
    try:
        first = {s.name: s.pid for s in stack.status()}
        assert all(first.values()), first
        out = capsys.readouterr().out
        assert "kafka: ready on" in out
        assert "topics: created launcher-test.inbox" in out

        assert main(["stack", "up", "--infra-only"]) == 0
        out = capsys.readouterr().out
        assert "kafka: already running" in out
        assert "redis: already running" in out
        count = len(TopicRegistry.from_settings(own_settings).all())
        assert f"topics: all {count} present" in out
        assert {s.name: s.pid for s in stack.status()} == first

        assert main(["stack", "status"]) == 0
        out = capsys.readouterr().out
        assert f"127.0.0.1:{own_settings.kafka_port}" in out
        assert out.count("running") == 2  # Kafka and Redis; the services were not asked for
    finally:
        assert main(["stack", "down"]) == 0
    assert [s.pid for s in stack.status()] == [None, None]
    assert not any(processes.is_alive(pid) for pid in first.values() if pid)
    assert main(["stack", "status"]) == 3
    assert "stopped" in capsys.readouterr().out


def test_down_leaves_a_process_it_did_not_start_alone(own_settings: Settings) -> None:
    # A pid file naming a process that is not ours (here: this test's own pid).
    server = RedisServer(own_settings)
    server.spec.pid_file.parent.mkdir(parents=True)
    server.spec.pid_file.write_text(f"{__import__('os').getpid()}\n")
    assert server.pid() is None
    assert server.stop() is False  # and, evidently, we are still alive


def test_missing_tool_is_named_with_its_fix(
    own_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing, match=r"redis-server not found on PATH: .*apt-get install"):
        RedisServer(own_settings).start()
