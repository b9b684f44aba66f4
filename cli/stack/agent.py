"""Port's execution agent against the local stack: its machine credential, kept in plain
text beside the stack (the engine signs the agent's messages with that secret), and the
environment that starts the agent (its variables: ``app/core/config.py`` of port-agent).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import orjson
from pydantic import SecretStr

from switchyard.bridge.credentials import DevCredential, check_secret, hash_secret
from switchyard.schemas.settings import Settings

AGENT_CLIENT_ID = "port-agent"
AGENT_NAME = "port-execution-agent"


def agent_credential(home: Path) -> tuple[str, SecretStr]:
    """The stack's agent credential (client id, secret), made once in ``<home>``."""
    path = home / "agent-secret"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return AGENT_CLIENT_ID, SecretStr(path.read_text().strip())


def add_agent_machine(auth_path: Path, client_id: str, secret: str) -> bool:
    """Make sure the auth file has a machine credential ``client_id`` with ``secret``
    (added, or its hash replaced when the secret changed); True if the file changed."""
    config = orjson.loads(auth_path.read_bytes())
    machines: list[dict[str, str]] = config.setdefault("machines", [])
    entry = next((m for m in machines if m.get("clientId") == client_id), None)
    if entry is not None and check_secret(secret, entry.get("clientSecretHash", "")):
        return False
    if entry is None:
        entry = {"name": AGENT_NAME, "clientId": client_id}
        machines.append(entry)
    entry["clientSecretHash"] = hash_secret(secret)
    auth_path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
    auth_path.chmod(0o600)
    return True


def new_agent_credential(auth_path: Path, settings: Settings) -> DevCredential:
    """The agent credential added to the auth file (``switchyard auth init``): the
    settings' (``SWITCHYARD_AGENT_CLIENT_ID``/``_SECRET``, so that the engine signs with
    what the agent holds) or a fresh one."""
    secret = settings.agent_client_secret
    made = DevCredential(
        settings.agent_client_id or AGENT_CLIENT_ID,
        secret.get_secret_value() if secret else secrets.token_urlsafe(24),
        "Port's execution agent",
    )
    add_agent_machine(auth_path, made.client_id, made.client_secret)
    return made


def agent_environment(settings: Settings) -> dict[str, str]:
    """What starts Port's execution agent against ``settings``' Kafka, org id and API
    (empty without an agent credential)."""
    secret = settings.agent_client_secret
    if settings.agent_client_id is None or secret is None:
        return {}
    return {
        "PORT_ORG_ID": settings.org_id,
        "PORT_API_BASE_URL": f"http://{settings.bridge_host}:{settings.bridge_port}",
        "PORT_CLIENT_ID": settings.agent_client_id,
        "PORT_CLIENT_SECRET": secret.get_secret_value(),
        "STREAMER_NAME": "KAFKA",
        # Bootstrap servers of one's own are taken only with a "local Port instance".
        "USING_LOCAL_PORT_INSTANCE": "True",
        "KAFKA_CONSUMER_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_CONSUMER_GROUP_ID": f"{settings.org_id}.port-agent",
    }


def write_agent_env(settings: Settings) -> Path | None:
    """``<home>/port-agent.env`` (mode 600), for ``docker run --env-file``."""
    env = agent_environment(settings)
    if not env:
        return None
    path = settings.home / "port-agent.env"
    path.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    path.chmod(0o600)
    return path
