"""``switchyard bridge --processes N``: N bridge processes behind one host:port.

The parent binds the API socket once and hands it to N child processes (fresh
interpreters, ``switchyard bridge --listen-fd``), which all accept on it. Chosen over
``SO_REUSEPORT`` sockets that each child binds: a port already taken fails once, in the
parent, before any child starts; no unrelated process of the same user can join the
port; and the children share one accept queue, so a connection queued while a child
stops is taken by another instead of being reset with the dying child's own queue.

The parent only supervises. SIGTERM (or SIGINT) to it is passed to every child,
which drains as a single bridge does; the parent exits once they have. A parent
killed outright takes its children with it (``PR_SET_PDEATHSIG``, on Linux). A child that
exits on its own takes the whole group down, loudly (an error naming it and its exit
code, then exit status 1): a crash means a bug or a broken dependency that a restart
loop would hide, and the process supervisor around the group (systemd, Kubernetes,
``switchyard stack``) restarts it whole.

Metrics stay honest: counters live in each child's memory, so ``/metrics`` on the
shared API port would land on a random child. In a group it answers 404 naming the
ports to scrape instead: child ``i`` serves its own ``/metrics``, ``/healthz`` and
``/readyz`` on ``SWITCHYARD_BRIDGE_OPS_PORT + i``. Every answer on the API port carries
``X-Switchyard-Bridge-Process: <index> <pid>``, naming the child that gave it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchyard.bridge.app import _ops_checks, create_app
from switchyard.cli import runtime, services
from switchyard.schemas.settings import Settings
from switchyard.topics.telemetry import metrics
from switchyard.topics.telemetry.logs import configure_logging, secret_values
from switchyard.topics.telemetry.ops import OpsServer
from switchyard.topics.telemetry.tracing import configure_tracing

log = logging.getLogger("switchyard")
PROCESS_HEADER = "x-switchyard-bridge-process"
_READY_POLL_S = 0.05
# Beyond the children's own drain (the shutdown grace), before they are killed.
_KILL_AFTER_S = 5.0


def _processes(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        message = f"--processes: must be a whole number (got {text!r})"
        raise argparse.ArgumentTypeError(message) from None
    if not 1 <= count <= 64:
        raise argparse.ArgumentTypeError(f"--processes: must be 1 to 64 (got {count})")
    return count


def add_bridge_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--processes", type=_processes, metavar="N",
        help="bridge processes behind the one port (default: SWITCHYARD_BRIDGE_PROCESSES, 1)",
    )  # fmt: skip
    # A group's children only: the inherited listening socket and the child's place.
    parser.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--process-index", type=int, default=0, help=argparse.SUPPRESS)


def serve_bridge(settings: Settings, args: argparse.Namespace) -> int:
    """``switchyard bridge``: one process, a group's parent, or one of its children."""
    processes: int = args.processes or settings.bridge_processes
    if args.listen_fd is not None:
        member = Member(args.listen_fd, args.process_index, processes)
        _stop_with_parent()
        _configure(settings, f"bridge-{member.index}")
        runtime.run(run_member(settings, member, args.ready_file), settings)
        return 0
    if processes == 1:
        return services.serve("bridge", settings, args.ready_file)
    _configure(settings, "bridge-group")
    status: int = runtime.run(run_group(settings, processes, args.ready_file), settings)
    return status


def _stop_with_parent() -> None:
    """SIGTERM this child when its parent dies (even by SIGKILL, which it can't pass
    on): no orphan keeps serving the port after the group is gone. Linux only."""
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _configure(settings: Settings, process: str) -> None:
    configure_logging(settings.log_format, settings.log_level, process=process,
                      secrets=secret_values(settings))  # fmt: skip
    metrics.set_enabled(settings.metrics_enabled)
    configure_tracing("bridge")


# -- a child ------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One child of a group: the inherited socket, its index, the group's size."""

    fd: int
    index: int
    processes: int


def ops_port(settings: Settings, index: int) -> int:
    """Where child ``index`` serves its ops endpoints (0: none)."""
    return settings.bridge_ops_port + index if settings.bridge_ops_port else 0


class _GroupMember:
    """ASGI wrapper of a child's app: names the child on every answer, and refuses
    ``/metrics`` on the shared port (a random child's counters), naming where to scrape."""

    def __init__(self, app: ASGIApp, settings: Settings, member: Member) -> None:
        self._app = app
        self._tag = f"{member.index} {os.getpid()}".encode()
        first, last = ops_port(settings, 0), ops_port(settings, member.processes - 1)
        where = (
            f"scrape each one's /metrics on {settings.ops_host}:{first}..{last}"
            " (SWITCHYARD_BRIDGE_OPS_PORT + process index)"
            if first
            else "set SWITCHYARD_BRIDGE_OPS_PORT to serve each one's /metrics on a port of its own"
        )
        message = f"this bridge runs as {member.processes} processes behind one port: {where}"
        self._refusal = orjson.dumps({"ok": False, "error": "not_found", "message": message})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (PROCESS_HEADER.encode(), self._tag)]
                message = {**message, "headers": headers}
            await send(message)

        if scope["path"] == "/metrics":
            await tagged({"type": "http.response.start", "status": 404,
                          "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": self._refusal})
            return
        await self._app(scope, receive, tagged)


async def run_member(settings: Settings, member: Member, ready_file: Path | None) -> None:
    listener = socket.socket(fileno=member.fd)
    app = create_app(settings)
    # Its readiness is the bridge's own (Redis and Kafka, once the lifespan has run).
    ops = OpsServer(settings.ops_host, ops_port(settings, member.index), _ops_checks(app))
    await ops.start()
    try:
        config = services.bridge_config(settings, _GroupMember(app, settings, member))
        await services.serve_bridge(uvicorn.Server(config), ready_file, [listener])
    finally:
        await ops.stop()
        listener.close()


# -- the parent -----------------------------------------------------------------------


@dataclass
class _Child:
    index: int
    process: asyncio.subprocess.Process
    ready: Path


def bind_listener(settings: Settings) -> socket.socket:
    """The API socket, bound and listening, for the children to inherit."""
    host, port = settings.bridge_host, settings.bridge_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    # As uvicorn binds: a port in TIME_WAIT after a restart is free.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise SystemExit(
            f"switchyard: cannot bind the bridge to {host}:{port} ({error.strerror}): stop "
            "what holds it, or set SWITCHYARD_BRIDGE_PORT"
        ) from None
    listener.listen(2048)  # uvicorn's default backlog
    return listener


async def _spawn(listener: socket.socket, index: int, processes: int, scratch: Path) -> _Child:
    ready = scratch / f"bridge-{index}.ready"
    fd = listener.fileno()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchyard.cli.main", "bridge",
        "--listen-fd", str(fd), "--process-index", str(index), "--processes", str(processes),
        "--ready-file", str(ready),
        pass_fds=(fd,),
    )  # fmt: skip
    return _Child(index, process, ready)


async def run_group(settings: Settings, processes: int, ready_file: Path | None) -> int:
    """Start the children on one socket, supervise them until a signal or a child's
    exit, then stop them all. Returns the exit status."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    children: list[_Child] = []
    with tempfile.TemporaryDirectory(prefix="switchyard-bridge-") as scratch:
        try:
            with bind_listener(settings) as listener:
                for index in range(processes):
                    children.append(await _spawn(listener, index, processes, Path(scratch)))
            # Closed here: the children hold the socket now, the parent accepts nothing.
            return await _supervise(settings, children, stop, ready_file)
        finally:
            await _stop_children(children, settings.shutdown_grace_s + _KILL_AFTER_S)


async def _all_ready(children: list[_Child]) -> None:
    while not all(child.ready.exists() for child in children):  # noqa: ASYNC110
        # Polled: a child's ready file is the one fact it gives (as for `stack up`).
        await asyncio.sleep(_READY_POLL_S)


async def _supervise(
    settings: Settings, children: list[_Child], stop: asyncio.Event, ready_file: Path | None
) -> int:
    exits = {asyncio.ensure_future(c.process.wait()): c for c in children}
    stopping = asyncio.ensure_future(stop.wait())
    ready = asyncio.ensure_future(_all_ready(children))
    pending: set[asyncio.Future[Any]] = {*exits, stopping, ready}
    with contextlib.ExitStack() as held:
        try:
            while True:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if ready in done:
                    # The group's pid, once every child serves.
                    held.enter_context(services.ready_marker(ready_file))
                    log.info("bridge serving %s:%d with %d processes: %s", settings.bridge_host,
                             settings.bridge_port, len(children), _pids(children))  # fmt: skip
                if done - {ready}:
                    break
        finally:
            for future in pending:
                future.cancel()
    if stopping in done:
        return 0
    return _verdict([exits[f] for f in done if f in exits])


def _verdict(exited: list[_Child]) -> int:
    status = 0
    for child in exited:
        code = child.process.returncode
        if code == 0:
            # A signal that reached the whole process group (Ctrl-C on a terminal).
            log.warning("bridge process %d (pid %d) stopped; stopping the group",
                        child.index, child.process.pid)  # fmt: skip
            continue
        log.error("bridge process %d (pid %d) exited with status %s; stopping the other "
                  "processes and exiting 1", child.index, child.process.pid, code)  # fmt: skip
        status = 1
    return status


def _pids(children: list[_Child]) -> str:
    return ", ".join(f"{c.index}: pid {c.process.pid}" for c in children)


async def _stop_children(children: list[_Child], within: float) -> None:
    running = [c for c in children if c.process.returncode is None]
    for child in running:
        with contextlib.suppress(ProcessLookupError):
            child.process.terminate()
    waiting = asyncio.gather(*(c.process.wait() for c in running))
    try:
        await asyncio.wait_for(waiting, within)
    except TimeoutError:
        for child in running:
            if child.process.returncode is None:
                log.error("bridge process %d (pid %d) did not stop within %.0f s; killed",
                          child.index, child.process.pid, within)  # fmt: skip
                child.process.kill()
        await asyncio.gather(*(c.process.wait() for c in running))
