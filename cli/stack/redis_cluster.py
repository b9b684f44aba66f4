"""A Redis Cluster of three masters with a replica each, on loopback (``stack up --cluster``).

Six ``redis-server --cluster-enabled yes`` processes on redis_port .. redis_port+5, with
their cluster bus on port+1000 (Redis's own default, port+10000, would put the default
stack's bus on 26379, where the test stack's Redis listens). Once all six answer,
``redis-cli --cluster create … --cluster-replicas 1`` joins them; a node that already
knows the others (its ``nodes.conf`` from an earlier ``up``) is never joined again.
Persistence as the single-node Redis: AOF under the durability profile, no RDB. With
``--secure`` the nodes serve, replicate and gossip over TLS only, behind a password.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time

import redis

from switchyard.cli.stack import processes
from switchyard.cli.stack.errors import StackError, ToolMissing
from switchyard.cli.stack.kafka import Say
from switchyard.cli.stack.redis import node_client, server_argv, wait_for_ping
from switchyard.cli.stack.secure import StackSecrets, redis_cluster_options, redis_options
from switchyard.schemas.settings import Settings

CLUSTER_NODES = 6
_MASTERS = 3
_BUS_OFFSET = 1000
_REDIS_FIX = "install it (apt-get install -y redis-server redis-tools)"


def node_ports(settings: Settings) -> list[int]:
    return [settings.redis_port + i for i in range(CLUSTER_NODES)]


def _client(port: int, secrets: StackSecrets | None) -> redis.Redis:
    return node_client(port, secrets, socket_timeout=2.0, decode_responses=True)


class RedisClusterNode:
    """One of the six nodes (``redis-1`` .. ``redis-6``)."""

    def __init__(self, settings: Settings, index: int, secrets: StackSecrets | None = None) -> None:
        self.settings = settings
        self.index = index
        self.secrets = secrets
        self.port = settings.redis_port + index - 1
        self.home = settings.data_dir / f"redis-{index}"
        self.url = f"{'rediss' if secrets else 'redis'}://127.0.0.1:{self.port}/0"
        self.spec = processes.ProcessSpec(
            name=f"redis-{index}",
            argv=(),
            # The process title is "redis-server 127.0.0.1:<port> [cluster]".
            marker=f"redis-server 127.0.0.1:{self.port}",
            pid_file=settings.run_dir / f"redis-{index}.pid",
            log_file=settings.log_dir / f"redis-{index}.log",
        )

    def pid(self) -> int | None:
        return processes.read_pid(self.spec)

    def start(self, say: Say | None = None) -> int:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ToolMissing("redis-server", _REDIS_FIX)
        for port in (self.port, self.port + _BUS_OFFSET):
            if not processes.wait_port_free("127.0.0.1", port):
                raise StackError(
                    f"port {port} is in use by another program "
                    f"({processes.listeners(port) or '?'}); stop it or set SWITCHYARD_REDIS_PORT"
                )
        self.home.mkdir(parents=True, exist_ok=True)
        secured = (
            [*redis_options(self.secrets), *redis_cluster_options(self.secrets)]
            if self.secrets
            else []
        )
        argv = server_argv(binary, self.port, self.home, self.settings, [
            "--cluster-enabled", "yes",
            "--cluster-config-file", str((self.home / "nodes.conf").resolve()),
            "--cluster-port", str(self.port + _BUS_OFFSET),
            "--cluster-node-timeout", "5000",
        ], secured=secured)  # fmt: skip
        return processes.start(dataclasses.replace(self.spec, argv=argv))

    def wait_ready(self, pid: int, timeout: float = 30.0) -> None:
        wait_for_ping(_client(self.port, self.secrets), pid, self.spec, timeout)

    def detail(self) -> str:
        """Its role, as the node itself reports it: ``master`` or ``replica of :P``."""
        client = _client(self.port, self.secrets)
        try:
            info = client.info("replication")
        except redis.RedisError as error:
            return f"no answer ({type(error).__name__})"
        finally:
            client.close()
        if info.get("role") == "master":
            return "master"
        return f"replica of :{info.get('master_port', '?')}"

    def stop(self) -> bool:
        return processes.stop(self.spec, grace_seconds=10.0)


def cluster_info(port: int, secrets: StackSecrets | None = None) -> dict[str, str]:
    """``CLUSTER INFO`` of the node on ``port`` (empty if it does not answer)."""
    client = _client(port, secrets)
    try:
        parsed = client.cluster("INFO")
    except redis.RedisError:
        return {}
    finally:
        client.close()
    return {str(k): str(v) for k, v in dict(parsed).items()}


def form_cluster(
    settings: Settings, say: Say, timeout: float = 60.0, secrets: StackSecrets | None = None
) -> None:
    """Join the six nodes into one cluster unless they already are one, then wait for
    ``cluster_state:ok`` on every node."""
    ports = node_ports(settings)
    if int(cluster_info(ports[0], secrets).get("cluster_known_nodes", "0")) < CLUSTER_NODES:
        _create(ports, secrets)
        say(f"redis cluster: created ({_MASTERS} masters, 1 replica each) on "
            f"127.0.0.1:{ports[0]}..{ports[-1]}")  # fmt: skip
    else:
        say("redis cluster: already formed")
    deadline = time.monotonic() + timeout
    while not all(_settled(port, secrets) for port in ports):
        if time.monotonic() > deadline:
            states = {p: cluster_info(p, secrets).get("cluster_state", "no answer") for p in ports}
            raise StackError(f"Redis Cluster not ok after {timeout:.0f} s: {states}")
        time.sleep(0.2)


def _settled(port: int, secrets: StackSecrets | None) -> bool:
    info = cluster_info(port, secrets)
    return (
        info.get("cluster_state") == "ok"
        and int(info.get("cluster_known_nodes", "0")) == CLUSTER_NODES
    )


def _create(ports: list[int], secrets: StackSecrets | None) -> None:
    cli = shutil.which("redis-cli")
    if cli is None:
        raise ToolMissing("redis-cli", _REDIS_FIX)
    tls, env = [], None
    if secrets is not None:
        tls = ["--tls", "--cacert", str(secrets.certs.ca_cert)]
        # The password by environment, not on a command line others can read.
        env = {**os.environ, "REDISCLI_AUTH": secrets.redis_password}
    result = subprocess.run(
        [cli, *tls, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
         "--cluster-replicas", "1", "--cluster-yes"],
        capture_output=True, text=True, check=False, timeout=120, env=env,
    )  # fmt: skip
    if result.returncode != 0:
        raise StackError(
            f"redis-cli --cluster create failed (exit {result.returncode}):\n"
            f"{(result.stdout + result.stderr)[-2000:]}"
        )
