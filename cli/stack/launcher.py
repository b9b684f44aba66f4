"""`switchyard stack up | down | status`: the local stack as one unit.

``up`` is idempotent: a component whose pid file names a live process of ours is
left alone. ``down`` stops only what ``up`` started (by pid file), in reverse order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from switchyard.cli.stack import processes
from switchyard.cli.stack.kafka import KafkaBroker
from switchyard.cli.stack.redis import RedisServer
from switchyard.schemas.settings import Settings

Say = Callable[[str], None]


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

    def line(self) -> str:
        if self.pid is None:
            return f"{self.name:<9} stopped"
        rss = f"{self.resident_kib / 1024:.0f} MiB" if self.resident_kib else "?"
        return f"{self.name:<9} running  pid {self.pid:<7} {self.address:<28} rss {rss}"


def _address(component: object) -> str:
    return str(getattr(component, "address", None) or getattr(component, "url", ""))


def infrastructure(settings: Settings) -> list[Component]:
    """Redis and Kafka, in start order."""
    return [RedisServer(settings), KafkaBroker(settings)]


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
            say(f"{name}: ready on {_address(component)} in {time.monotonic() - started:.1f} s")
        return self.status()

    def status(self) -> list[ComponentStatus]:
        result = []
        for component in self.components:
            pid = component.pid()
            result.append(
                ComponentStatus(
                    name=component.spec.name,
                    pid=pid,
                    address=_address(component),
                    resident_kib=processes.resident_kib(pid) if pid else None,
                    log_file=str(component.spec.log_file),
                )
            )
        return result

    def down(self, say: Say = print) -> None:
        for component in reversed(self.components):
            if component.stop():
                say(f"{component.spec.name}: stopped")
            else:
                say(f"{component.spec.name}: was not running")
