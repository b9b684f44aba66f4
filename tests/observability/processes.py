"""Switchyard's processes as real subprocesses on the test broker and Redis, each with
its ops endpoints on a port of its own, for tests of what an operator sees."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from switchyard.cli.stack.full import environment
from switchyard.schemas.settings import Settings
from tests.helpers import until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Launched:
    """The processes started, their settings (with the ports chosen) and logs."""

    settings: Settings
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def ops_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.settings.ops_port(name)}"

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")[-4000:]


def with_ops_ports(settings: Settings) -> Settings:
    """``settings`` with a free port for the bridge and each process's ops endpoints."""
    names = ("engine", "executor", "timers", "scheduler", "triggers")
    update: dict[str, object] = {f"{n}_ops_port": free_port() for n in names}
    update["bridge_port"] = free_port()
    return settings.model_copy(update=update)


async def _started(ready: Path, process: asyncio.subprocess.Process) -> bool:
    return os.path.exists(ready) or process.returncode is not None  # noqa: ASYNC240


@contextlib.asynccontextmanager
async def launched(
    settings: Settings,
    names: Sequence[str],
    home: Path,
    extra_env: Mapping[str, str] | None = None,
) -> AsyncIterator[Launched]:
    """Start ``switchyard <name> --ready-file …`` for each name, wait until each is ready,
    and kill them all on the way out (the test reads their logs on failure)."""
    settings = with_ops_ports(settings.model_copy(update={"home": home}))
    env = {**os.environ, **environment(settings), **(extra_env or {})}
    found = Launched(settings)
    try:
        for name in names:
            ready, log = home / f"{name}.ready", home / f"{name}.log"
            found.logs[name] = log
            with log.open("wb") as sink:
                found.processes[name] = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "switchyard.cli.main", name,
                    "--ready-file", str(ready),
                    env=env, stdout=asyncio.subprocess.DEVNULL, stderr=sink,
                )  # fmt: skip
        for name, process in found.processes.items():
            ready = home / f"{name}.ready"
            await until(partial(_started, ready, process), within=90)
            assert process.returncode is None, f"{name} exited:\n{found.log(name)}"
        yield found
    finally:
        for process in found.processes.values():
            if process.returncode is None:
                process.terminate()
        for process in found.processes.values():
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
