"""Switchyard's own processes in the local stack: engine, executor, timers, scheduler,
triggers, bridge.

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
        self,
        settings: Settings,
        name: str,
        env: Mapping[str, str],
        address: str = "",
        *,
        module: str = "switchyard.cli.main",
        args: tuple[str, ...] | None = None,
        ready_file: bool = True,
        ops_url: str | None = None,
    ) -> None:
        """``python -m module *args --ready-file F`` (default: ``switchyard.cli.main name``).

        Without ``ready_file`` the process counts as ready once it runs (for commands
        that take no ``--ready-file``, such as ``switchyard worker run``). ``ops_url``:
        where it serves /metrics, /healthz and /readyz (``switchyard stack status``).
        """
        self.settings = settings
        self.ops_url = ops_url
        self.address = address or "-"
        self.ready_file = (settings.run_dir / f"{name}.ready").resolve()
        self.uses_ready_file = ready_file
        self.env = {**os.environ, **env}
        ready = ("--ready-file", str(self.ready_file)) if ready_file else ()
        command = (module, *((name,) if args is None else args), *ready)
        self.spec = processes.ProcessSpec(
            name=name,
            argv=(sys.executable, "-m", *command),
            marker=" ".join(command),
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
        if not self.uses_ready_file:
            if not processes.is_alive(pid):
                raise StackError(f"{self.spec.name} exited:\n{processes.tail(self.spec.log_file)}")
            return
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
