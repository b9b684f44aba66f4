"""Private Redis servers for tests of cluster and replication behaviour.

``redis_cluster()`` starts three ``redis-server --cluster-enabled yes`` masters (and
optionally replicas of each) on ports the OS gives, joins them with ``redis-cli
--cluster create`` and waits for ``cluster_state:ok`` (and the replicas online).
``redis_pair()`` starts a master and a replica of it (``--replicaof``) and waits until
the replica is online. Both are context managers that stop their servers (and remove
their files) on the way out, and fail loudly, saying what is missing, when
``redis-server`` or ``redis-cli`` is not installed. Nothing here touches the shared
test stack.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_ports, redis_server

_START_WITHIN_S = 30.0


def _free_port() -> int:
    """A port free a moment ago, and its cluster bus port (port + 10000) too."""
    return free_ports(2, apart=10000)


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: apt-get install redis-server (7.x)")
    return found


def _cli(port: int, *args: str) -> str:
    done = subprocess.run(
        [_binary("redis-cli"), "-p", str(port), *args],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return done.stdout


def _wait_for(port: int, check: str, what: str, *args: str) -> None:
    deadline = time.monotonic() + _START_WITHIN_S
    last = ""
    while time.monotonic() < deadline:
        try:
            last = _cli(port, *args)
        except subprocess.CalledProcessError as error:
            last = error.stderr
        if check in last:
            return
        time.sleep(0.05)
    raise RuntimeError(f"redis on port {port}: {what} not reached; last answer: {last!r}")


def _wait_for_online(port: int, replicas: int) -> None:
    deadline = time.monotonic() + _START_WITHIN_S
    last = ""
    while time.monotonic() < deadline:
        last = _cli(port, "INFO", "replication")
        if last.count("state=online") >= replicas:
            return
        time.sleep(0.05)
    raise RuntimeError(f"redis on port {port}: replicas not online; last answer: {last!r}")


@dataclass
class RedisServer:
    """One private redis-server: its port and process."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@contextmanager
def _server(directory: Path, *extra: str) -> Iterator[RedisServer]:
    _binary("redis-server")  # missing: say how to install it
    data = Path(tempfile.mkdtemp(prefix="node-", dir=directory))
    with redis_server(data, *extra, pick=_free_port) as (port, process):
        yield RedisServer(port, process)


@contextmanager
def redis_cluster(masters: int = 3, replicas: int = 0) -> Iterator[list[RedisServer]]:
    """A Redis Cluster of ``masters`` masters with ``replicas`` replicas each, every slot
    covered; the servers in ``redis-cli --cluster create``'s order (masters first)."""
    with tempfile.TemporaryDirectory(prefix="sy-cluster-") as root, ExitStack() as stack:
        nodes = []
        for n in range(masters * (1 + replicas)):
            options = ("--cluster-enabled", "yes", "--cluster-config-file", f"{root}/n{n}.conf")
            nodes.append(stack.enter_context(_server(Path(root), *options)))
        _cli(nodes[0].port, "--cluster", "create",
             *(f"127.0.0.1:{node.port}" for node in nodes),
             "--cluster-replicas", str(replicas), "--cluster-yes")  # fmt: skip
        for node in nodes:
            _wait_for(node.port, "cluster_state:ok", "cluster_state:ok", "CLUSTER", "INFO")
        if replicas:
            for node in nodes[:masters]:
                # Synced, not only connected: WAIT counts only online replicas.
                _wait_for(node.port, f"slave{replicas - 1}:", "its replicas linked",
                          "INFO", "replication")  # fmt: skip
                _wait_for_online(node.port, replicas)
        yield nodes


@contextmanager
def redis_pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    """A master and one replica of it, linked (``master_link_status:up``)."""
    with tempfile.TemporaryDirectory(prefix="sy-pair-") as root, ExitStack() as stack:
        master = stack.enter_context(_server(Path(root)))
        replica = stack.enter_context(
            _server(Path(root), "--replicaof", "127.0.0.1", str(master.port))
        )
        _wait_for(replica.port, "master_link_status:up", "the link to its master",
                  "INFO", "replication")  # fmt: skip
        _wait_for_online(master.port, 1)
        yield master, replica
