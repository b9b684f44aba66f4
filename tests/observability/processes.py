"""Switchyard's processes as real subprocesses on the test broker and Redis, each with
its ops endpoints on a port of its own, for tests of what an operator sees."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from switchyard.cli.stack.full import environment
from switchyard.schemas.settings import Settings
from tests.ports import free_port, on_free_ports_async, until_ready


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


async def _start(
    settings: Settings, names: Sequence[str], home: Path, extra_env: Mapping[str, str] | None
) -> Launched:
    """One attempt on new ports; a process that exits first is a failure, raised as a
    port clash (``EADDRINUSE``) when its log says its port was taken meanwhile."""
    settings = with_ops_ports(settings)
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
            await until_ready(process, home / f"{name}.ready", partial(found.log, name), 90)
    except BaseException:
        await _stop(found)
        raise
    return found


async def _stop(found: Launched) -> None:
    for process in found.processes.values():
        if process.returncode is None:
            process.terminate()
    for process in found.processes.values():
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def launched(
    settings: Settings,
    names: Sequence[str],
    home: Path,
    extra_env: Mapping[str, str] | None = None,
) -> AsyncIterator[Launched]:
    """Start ``switchyard <name> --ready-file …`` for each name, wait until each is ready,
    and kill them all on the way out (the test reads their logs on failure). Their ports
    are chosen by the OS a moment before; a start that lost one is tried again on others."""
    settings = settings.model_copy(update={"home": home})
    found = await on_free_ports_async(partial(_start, settings, names, home, extra_env))
    try:
        yield found
    finally:
        await _stop(found)
