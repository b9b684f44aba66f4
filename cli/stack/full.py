"""The whole local stack: infrastructure, topics, dev credentials, Switchyard's processes."""

from __future__ import annotations

import hashlib
import json
import secrets

from pydantic import SecretStr

from switchyard.bridge.credentials import DevCredential, write_dev_config
from switchyard.cli.stack.agent import AGENT_CLIENT_ID, add_agent_machine, agent_credential
from switchyard.cli.stack.kafka import bootstrap_servers
from switchyard.cli.stack.launcher import Component, Say, Stack, infrastructure
from switchyard.cli.stack.profile import StackProfile
from switchyard.cli.stack.secure import client_settings, stack_secrets
from switchyard.cli.stack.services import PythonService
from switchyard.schemas.settings import Settings

SERVICE_NAMES = ("engine", "executor", "timers", "scheduler", "triggers", "bridge")


def local_settings(settings: Settings, profile: StackProfile | None = None) -> Settings:
    """The settings the stack's own processes run with: the launched broker and Redis,
    an absolute home, and a token secret and an agent credential kept in the home
    folder (made once; the engine signs Port's execution agent's messages with it).

    On a cluster: the three brokers to bootstrap from, the first Redis node (the cluster
    client finds the rest), topics with three copies each, and one replica's WAIT.
    Secured (``--secure``): SASL_SSL to the brokers and TLS with the password to Redis,
    with the home's certificates and passwords (``secure.py``)."""
    cluster = profile is not None and profile.cluster
    home = settings.home.resolve()
    secret = settings.token_secret
    if secret is None:
        path = home / "token-secret"
        if not path.exists():
            home.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        secret = SecretStr(path.read_text().strip())
    agent_id, agent_secret = settings.agent_client_id, settings.agent_client_secret
    if agent_secret is None:
        agent_id, agent_secret = agent_credential(home)
    # One engine and one executor per local stack: a stable instance id lets a restarted
    # one take its partitions back at once (static membership) instead of after a
    # rebalance.
    of_home = hashlib.sha256(str(home).encode()).hexdigest()[:12]
    instance = settings.engine_instance_id or f"engine-{of_home}"
    # The webhook executor too: without it a killed executor's partitions waited for its
    # session to time out (10 s) before its restart got them back.
    executor = settings.executor_instance_id or f"executor-{of_home}"
    # And the trigger matcher: its restart waited 8 s for the killed one's session.
    triggers = settings.triggers_instance_id or f"triggers-{of_home}"
    local = settings.model_copy(
        update={
            "engine_instance_id": instance,
            "executor_instance_id": executor,
            "triggers_instance_id": triggers,
            "home": home,
            "kafka_bootstrap_servers": bootstrap_servers(settings, cluster),
            "redis_url": f"redis://127.0.0.1:{settings.redis_port}/0",
            "redis_cluster": cluster,
            "topic_replication_factor": 3 if cluster else settings.topic_replication_factor,
            # On a cluster a failover must not lose what Kafka holds as done: WAIT for a
            # replica before each commit, unless set otherwise.
            "redis_wait_replicas": (
                1
                if cluster and "redis_wait_replicas" not in settings.model_fields_set
                else settings.redis_wait_replicas
            ),
            "token_secret": secret,
            "agent_client_id": agent_id or AGENT_CLIENT_ID,
            "agent_client_secret": agent_secret,
        }
    )
    if profile is not None and profile.secure:
        return client_settings(local, stack_secrets(home))
    return local


def environment(settings: Settings) -> dict[str, str]:
    """``settings`` as SWITCHYARD_* variables, so a child process rebuilds the same object."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
        env[f"SWITCHYARD_{name.upper()}"] = text
    return env


def ops_url(settings: Settings, name: str) -> str | None:
    """Where process ``name`` serves /metrics, /healthz and /readyz (None: port 0)."""
    port = settings.ops_port(name)
    host = settings.bridge_host if name == "bridge" else settings.ops_host
    # Bound to every address, it answers on loopback.
    host = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
    return f"http://{host}:{port}" if port else None


# Engine i (from 2 on) serves its ops endpoints 10·(i-1) above engine_ops_port, clear
# of the other services' ports (engine_ops_port + 1..4 by default).
_ENGINE_OPS_STRIDE = 10


def engine_services(settings: Settings, env: dict[str, str], engines: int) -> list[Component]:
    """One engine, as before; or ``engine-1`` .. ``engine-N``, each with its own static
    member id (SWITCHYARD_ENGINE_INSTANCE_ID=engine-i) and ops port, in one group."""
    if engines == 1:
        return [PythonService(settings, "engine", env, ops_url=ops_url(settings, "engine"))]
    result: list[Component] = []
    for i in range(1, engines + 1):
        name = f"engine-{i}"
        base = settings.engine_ops_port  # 0: not served, by any of them
        port = base + _ENGINE_OPS_STRIDE * (i - 1) if base else 0
        own = settings.model_copy(update={"engine_instance_id": name, "engine_ops_port": port})
        own_env = {
            **env,
            "SWITCHYARD_ENGINE_INSTANCE_ID": name,
            "SWITCHYARD_ENGINE_OPS_PORT": str(own.engine_ops_port),
        }
        service = PythonService(
            own, name, own_env, args=("engine",), ops_url=ops_url(own, "engine")
        )
        result.append(service)
    return result


def full_stack(settings: Settings, profile: StackProfile | None = None) -> tuple[Stack, Stack]:
    """(infrastructure, services): started in that order, with the topics between."""
    profile = profile or StackProfile()
    env = environment(settings)
    bridge_url = f"http://{settings.bridge_host}:{settings.bridge_port}"
    services: list[Component] = engine_services(settings, env, profile.engines)
    services += [
        PythonService(
            settings,
            name,
            env,
            address=bridge_url if name == "bridge" else "",
            ops_url=ops_url(settings, name),
        )
        for name in SERVICE_NAMES
        if name != "engine"
    ]
    secrets = stack_secrets(settings.home) if profile.secure else None
    infra = infrastructure(settings, profile.cluster, secrets)
    return Stack(settings, infra), Stack(settings, services)


def dev_credentials(settings: Settings, say: Say) -> list[DevCredential]:
    """Write a dev auth file on first use; the credentials are kept beside it (mode 600).
    The stack's own auth file also gets the agent's machine credential (its secret in
    ``<home>/agent-secret``); an auth file of one's own (SWITCHYARD_AUTH_FILE) is left
    alone."""
    saved = settings.home / "dev-credentials.json"
    if settings.auth_file is None and not settings.auth_path.exists():
        made = write_dev_config(settings.auth_path)
        saved.write_text(json.dumps([c.__dict__ for c in made], indent=2))
        saved.chmod(0o600)
        say(f"wrote dev users and machine credentials to {settings.auth_path}")
    agent_id, agent_secret = settings.agent_client_id, settings.agent_client_secret
    own_file = settings.auth_file is None and settings.auth_path.exists()
    if own_file and agent_id and agent_secret is not None:
        secret = agent_secret.get_secret_value()
        if add_agent_machine(settings.auth_path, agent_id, secret):
            say(f"added the execution agent's credential {agent_id!r} to {settings.auth_path}")
    if not saved.exists():
        return []
    return [DevCredential(**c) for c in json.loads(saved.read_text())]
