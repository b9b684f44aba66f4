"""`switchyard stack up | down | status`: the local stack as one unit.

``up`` is idempotent: a component whose pid file names a live process of ours is
left alone. ``down`` stops only what ``up`` started (by pid file), in reverse order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx

from switchyard.cli.stack import processes
from switchyard.cli.stack.kafka import KafkaBroker, kafka_nodes
from switchyard.cli.stack.redis import RedisServer
from switchyard.cli.stack.redis_cluster import CLUSTER_NODES, RedisClusterNode
from switchyard.cli.stack.secure import StackSecrets
from switchyard.schemas.settings import Settings

Say = Callable[[str], None]
_READYZ_TIMEOUT_S = 1.0


class Component(Protocol):
    """One process of the local stack."""

    @property
    def spec(self) -> processes.ProcessSpec: ...

    def pid(self) -> int | None: ...

    def start(self, say: Say | None = None) -> int: ...

    def wait_ready(self, pid: int, timeout: float = ...) -> None: ...

    def stop(self) -> bool: ...


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    address: str
    resident_kib: int | None
    log_file: str
    # The process's ops endpoints (/metrics, /healthz, /readyz), and what /readyz said.
    ops_url: str | None = None
    readiness: str | None = None
    # A cluster node's place in its cluster (broker id and ISR share, Redis role).
    detail: str | None = None

    def line(self) -> str:
        if self.pid is None:
            return f"{self.name:<9} stopped"
        rss = f"{self.resident_kib / 1024:.0f} MiB" if self.resident_kib else "?"
        line = f"{self.name:<9} running  pid {self.pid:<7} {self.address:<28} rss {rss}"
        if self.ops_url is not None:
            line += f"  {self.ops_url}/metrics  {self.readiness}"
        if self.detail is not None:
            line += f"  {self.detail}"
        return line


def readiness(ops_url: str, timeout: float = _READYZ_TIMEOUT_S) -> str:
    """What ``ops_url``/readyz says, in a few words: ``ready``, ``not ready: redis
    (…)`` naming each failing check, or that it did not answer."""
    try:
        response = httpx.get(f"{ops_url}/readyz", timeout=timeout)
        body = response.json()
    except (httpx.HTTPError, ValueError) as error:
        return f"no answer on /readyz ({type(error).__name__})"
    if response.status_code == 200:
        return "ready"
    checks = body.get("checks", {}) if isinstance(body, dict) else {}
    failed = [f"{name} ({c.get('detail')})" for name, c in checks.items() if not c.get("ok")]
    return "not ready: " + (", ".join(failed) or f"HTTP {response.status_code}")


def _ops_url(component: object) -> str | None:
    url = getattr(component, "ops_url", None)
    return str(url) if url else None


def _address(component: object) -> str:
    return str(getattr(component, "address", None) or getattr(component, "url", ""))


def _detail(component: object) -> str | None:
    describe = getattr(component, "detail", None)
    return str(describe()) if callable(describe) else None


def infrastructure(
    settings: Settings, cluster: bool = False, secrets: StackSecrets | None = None
) -> list[Component]:
    """Redis and Kafka, in start order: one of each, or (``cluster``) six Redis Cluster
    nodes and three brokers; with ``secrets`` (``--secure``) behind TLS and passwords."""
    if not cluster:
        return [RedisServer(settings, secrets), KafkaBroker(settings, secrets=secrets)]
    redis_nodes: list[Component] = [
        RedisClusterNode(settings, i + 1, secrets) for i in range(CLUSTER_NODES)
    ]
    brokers: list[Component] = [
        KafkaBroker(settings, n, secrets) for n in kafka_nodes(settings, True)
    ]
    return redis_nodes + brokers


class Stack:
    """Processes in start order (default: the infrastructure only)."""

    def __init__(self, settings: Settings, components: Sequence[Component] | None = None) -> None:
        self.settings = settings
        self.components: list[Component] = list(
            infrastructure(settings) if components is None else components
        )

    def up(self, say: Say = print) -> list[ComponentStatus]:
        for component in self.components:
            name = component.spec.name
            pid = component.pid()
            if pid is not None:
                say(f"{name}: already running (pid {pid}) on {_address(component)}")
                continue
            started = time.monotonic()
            pid = component.start(say)
            component.wait_ready(pid)
            took = time.monotonic() - started
            ops = _ops_url(component)
            metrics = f"; metrics on {ops}/metrics" if ops else ""
            say(f"{name}: ready on {_address(component)} in {took:.1f} s{metrics}")
        return self.status()

    def status(self) -> list[ComponentStatus]:
        result = []
        for component in self.components:
            pid = component.pid()
            ops = _ops_url(component)
            result.append(
                ComponentStatus(
                    name=component.spec.name,
                    pid=pid,
                    address=_address(component),
                    resident_kib=processes.resident_kib(pid) if pid else None,
                    log_file=str(component.spec.log_file),
                    ops_url=ops,
                    readiness=readiness(ops) if ops and pid else None,
                    detail=_detail(component) if pid else None,
                )
            )
        return result

    def down(self, say: Say = print) -> None:
        for component in reversed(self.components):
            if component.stop():
                say(f"{component.spec.name}: stopped")
            else:
                say(f"{component.spec.name}: was not running")
