"""The local stack's side: an agent credential made once, added to the stack's auth
file (which the bridge then accepts), and the environment that starts Port's agent."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from switchyard.bridge.credentials import Credentials
from switchyard.cli.main import main
from switchyard.cli.stack.agent import agent_environment, write_agent_env
from switchyard.cli.stack.full import dev_credentials, environment, local_settings
from switchyard.schemas.settings import Settings


def test_the_stack_makes_one_agent_credential_the_bridge_accepts(tmp_path: Path) -> None:
    local = local_settings(Settings(home=tmp_path))
    assert local.agent_client_id == "port-agent"
    assert local.agent_client_secret is not None
    secret = local.agent_client_secret.get_secret_value()
    again = local_settings(Settings(home=tmp_path))
    assert again.agent_client_secret is not None
    assert again.agent_client_secret.get_secret_value() == secret  # kept in the home

    said: list[str] = []
    dev_credentials(local, said.append)
    dev_credentials(local, said.append)  # idempotent: added once
    assert sum("added the execution agent" in line for line in said) == 1
    credentials = Credentials.load(local.auth_path)
    actor = credentials.authenticate("port-agent", secret)
    assert actor is not None
    assert actor.is_machine


def test_a_secret_of_ones_own_is_used_and_the_file_follows_it(tmp_path: Path) -> None:
    local = local_settings(Settings(home=tmp_path))
    dev_credentials(local, lambda _: None)
    mine = local_settings(Settings(home=tmp_path, agent_client_secret="my-own-secret"))
    dev_credentials(mine, lambda _: None)
    assert Credentials.load(mine.auth_path).authenticate("port-agent", "my-own-secret")


def test_the_agents_environment_points_at_the_stack(tmp_path: Path) -> None:
    local = local_settings(Settings(home=tmp_path, org_id="acme", kafka_port=19092))
    env = agent_environment(local)
    assert local.agent_client_secret is not None
    assert env == {
        "PORT_ORG_ID": "acme",
        "PORT_API_BASE_URL": "http://127.0.0.1:8080",
        "PORT_CLIENT_ID": "port-agent",
        "PORT_CLIENT_SECRET": local.agent_client_secret.get_secret_value(),
        "STREAMER_NAME": "KAFKA",
        "USING_LOCAL_PORT_INSTANCE": "True",
        "KAFKA_CONSUMER_BOOTSTRAP_SERVERS": "127.0.0.1:19092",
        "KAFKA_CONSUMER_GROUP_ID": "acme.port-agent",
    }
    path = write_agent_env(local)
    assert path is not None
    assert "PORT_ORG_ID=acme\n" in path.read_text()
    assert path.stat().st_mode & 0o077 == 0
    assert agent_environment(Settings(home=tmp_path)) == {}


def test_auth_init_adds_the_agent_and_says_what_to_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "auth.json"
    assert main(["auth", "init", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "SWITCHYARD_AGENT_CLIENT_SECRET=" in out
    secret = out.split("SWITCHYARD_AGENT_CLIENT_SECRET=")[1].split()[0]
    machines = orjson.loads(path.read_bytes())["machines"]
    assert [m["clientId"] for m in machines] == ["dev-machine", "port-agent"]
    assert Credentials.load(path).authenticate("port-agent", secret) is not None


def test_auth_init_uses_the_agent_secret_of_the_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What docker compose does: the engine and auth-init share the secret.
    monkeypatch.setenv("SWITCHYARD_AGENT_CLIENT_SECRET", "shared-secret")
    path = tmp_path / "auth.json"
    assert main(["auth", "init", "--file", str(path)]) == 0
    assert "SWITCHYARD_AGENT_CLIENT_SECRET=shared-secret" in capsys.readouterr().out
    assert Credentials.load(path).authenticate("port-agent", "shared-secret") is not None


def test_an_empty_agent_secret_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHYARD_AGENT_CLIENT_SECRET", "")
    assert Settings().agent_client_secret is None


def test_the_stacks_processes_get_the_org_id_and_the_agent_secret(tmp_path: Path) -> None:
    local = local_settings(Settings(home=tmp_path))
    env = environment(local)
    assert local.agent_client_secret is not None
    assert env["SWITCHYARD_AGENT_CLIENT_SECRET"] == local.agent_client_secret.get_secret_value()
    assert env["SWITCHYARD_AGENT_CLIENT_ID"] == "port-agent"
    assert env["SWITCHYARD_ORG_ID"] == "switchyard"
