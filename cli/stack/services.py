"""Switchyard's own processes in the local stack: engine, executor, bridge.

Each is ``python -m switchyard.cli.main <name> --ready-file …`` started detached with
the stack's settings in its environment; it is ready when it has written its pid
to the ready file.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Mapping

from switchyard.cli.stack import processes
from switchyard.cli.stack.errors import StackError
from switchyard.cli.stack.kafka import Say
from switchyard.schemas.settings import Settings


class PythonService:
    """One Switchyard process of the stack."""

    def __init__(
        self, settings: Settings, name: str, env: Mapping[str, str], address: str = ""
    ) -> None:
        self.settings = settings
        self.address = address or "-"
        self.ready_file = (settings.run_dir / f"{name}.ready").resolve()
        self.env = {**os.environ, **env}
        self.spec = processes.ProcessSpec(
            name=name,
            argv=(
                sys.executable,
                "-m",
                "switchyard.cli.main",
                name,
                "--ready-file",
                str(self.ready_file),
            ),
            marker=f"switchyard.cli.main {name} --ready-file {self.ready_file}",
            pid_file=settings.run_dir / f"{name}.pid",
            log_file=settings.log_dir / f"{name}.log",
            env=self.env,
        )

    def pid(self) -> int | None:
        return processes.read_pid(self.spec)

    def start(self, say: Say | None = None) -> int:
        self.ready_file.unlink(missing_ok=True)
        return processes.start(dataclasses.replace(self.spec))

    def wait_ready(self, pid: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if int(self.ready_file.read_text().strip() or 0) == pid:
                    return
            except (FileNotFoundError, ValueError):
                pass
            if not processes.is_alive(pid):
                log = processes.tail(self.spec.log_file)
                raise StackError(f"{self.spec.name} exited during start-up:\n{log}")
            if time.monotonic() > deadline:
                raise StackError(
                    f"{self.spec.name} not ready in {timeout:.0f} s; see {self.spec.log_file}"
                )
            time.sleep(0.05)

    def stop(self) -> bool:
        stopped = processes.stop(self.spec, grace_seconds=20.0)
        self.ready_file.unlink(missing_ok=True)
        return stopped
