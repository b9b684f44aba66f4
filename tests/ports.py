"""Ports for the servers tests start, without the pick-close-bind race.

A port the OS calls free when a probe closes it can be taken by another process (a
parallel test, another helper's stack) before our server binds it. So:

* a server started in-process binds port 0 and the test reads the port it got back
  from the server (:func:`bound_port`, :func:`serving_app`);
* a server that must be told its port (redis-server, whose ``--port 0`` turns TCP off;
  Kafka, which advertises its listener; our services, whose ops port 0 means "off")
  is started by :func:`on_free_ports`: a start that fails because its port was taken
  meanwhile is detected and tried again on new ports, never slept on;
* :func:`redis_server` starts a private redis-server that way, and knows it by its
  pid, so a port grabbed by another Redis is never mistaken for ours.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
    contextmanager,
)
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
import uvicorn
from redis.backoff import NoBackoff
from redis.retry import Retry
from starlette.types import ASGIApp

from switchyard.cli.main import main
from switchyard.cli.stack import processes
from switchyard.cli.stack.kafka import KafkaBroker
from switchyard.cli.stack.redis import RedisServer
from switchyard.cli.stack.secure import StackSecrets
from switchyard.schemas.settings import Settings
from tests.helpers import until

T = TypeVar("T")

ATTEMPTS = 5
_START_WITHIN_S = 30.0
# How a start that lost its port reads in what our launcher, uvicorn, redis-server and
# Kafka say (an exception's text or a log's tail).
_CLASH_WORDS = (
    "address already in use",  # redis-server, Kafka (java.net.BindException), OSError
    "is in use by another program",  # switchyard stack: the port was taken before start
    "is taken by another process",  # switchyard services: OpsPortTaken
    "error while attempting to bind",  # uvicorn
)


class PortsKeptClashing(RuntimeError):
    """Every attempt found one of its ports taken: something holds ports at a rate no
    retry outruns, which the message says."""


def free_port() -> int:
    """A port nobody listened on a moment ago: only a candidate for a server that can't
    bind 0 itself, to be started through :func:`on_free_ports` (or a port a test wants
    closed, where someone else binding it does no harm)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_ports(count: int, *, apart: int = 1) -> int:
    """The first of ``count`` ports ``apart`` from each other, all free a moment ago
    (for settings that derive a process's ports from one: port + i·apart)."""
    while True:
        first = free_port()
        if first + (count - 1) * apart > 65535:
            continue
        if all(is_free(first + i * apart) for i in range(1, count)):
            return first


def is_free(port: int) -> bool:
    """Whether ``port`` can be bound on the loopback address now."""
    return processes.port_bindable(port)


def clashed(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) says a port was already taken."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.EADDRINUSE:
            return True
        if any(words in str(seen).lower() for words in _CLASH_WORDS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def said_clash(text: str) -> bool:
    """Whether a server's log says it could not bind its port."""
    return any(words in text.lower() for words in _CLASH_WORDS)


def on_free_ports(start: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """``start()`` (which picks its ports with :func:`free_port` each time it is called)
    until it starts without losing a port to someone else; any other failure is raised
    at once. ``start`` must clean up after itself when it fails."""
    for _ in range(attempts - 1):
        try:
            return start()
        except Exception as error:
            if not clashed(error):
                raise
    try:
        return start()
    except Exception as error:
        if clashed(error):
            raise PortsKeptClashing(f"each of {attempts} starts found a port taken") from error
        raise


async def on_free_ports_async(start: Callable[[], Awaitable[T]], attempts: int = ATTEMPTS) -> T:
    """:func:`on_free_ports` for a start that is a coroutine."""
    for _ in range(attempts - 1):
        try:
            return await start()
        except Exception as error:
            if not clashed(error):
                raise
    try:
        return await start()
    except Exception as error:
        if clashed(error):
            raise PortsKeptClashing(f"each of {attempts} starts found a port taken") from error
        raise


@asynccontextmanager
async def on_a_free_port(
    make: Callable[[int], AbstractAsyncContextManager[T]],
) -> AsyncIterator[tuple[int, T]]:
    """``make(port)`` entered on a port free a moment ago, and again on another one
    while entering it fails because the port was taken meanwhile: the port and what
    entering gave, for the block."""
    async with AsyncExitStack() as held:

        async def enter() -> tuple[int, T]:
            port = free_port()
            return port, await held.enter_async_context(make(port))

        yield await on_free_ports_async(enter)


def bound_port(server: uvicorn.Server) -> int:
    """The port a started uvicorn server listens on (it was given port 0)."""
    return int(server.servers[0].sockets[0].getsockname()[1])


@asynccontextmanager
async def serving_app(app: ASGIApp) -> AsyncIterator[str]:
    """``app`` served by uvicorn on a port the OS gives it: the base URL while the
    block runs."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("uvicorn stopped before it served")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{bound_port(server)}"
    finally:
        server.should_exit = True
        await task


def _ours_answers(port: int, pid: int) -> bool:
    # One try per call: the caller polls, and watches the process between polls.
    client = redis.Redis(port=port, socket_timeout=1.0, socket_connect_timeout=1.0,
                         retry=Retry(NoBackoff(), 0))  # fmt: skip
    try:
        return int(client.info("server")["process_id"]) == pid
    except (redis.RedisError, OSError, KeyError):
        return False
    finally:
        client.close()


def start_redis(
    argv: Callable[[int], Sequence[str]],
    log: Callable[[int], Path],
    pick: Callable[[], int] = free_port,
    answers: Callable[[int, int], bool] = _ours_answers,
) -> tuple[int, subprocess.Popen[bytes]]:
    """One redis-server started with ``argv(port)`` on a port from ``pick``, logging to
    ``log(port)``, until ``answers(port, pid)``: its port and process. One that exits
    (or never answers) fails with its log's tail, which names a port taken meanwhile
    (for :func:`on_free_ports` to start it again on another)."""
    port = pick()
    process = subprocess.Popen(argv(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + _START_WITHIN_S
    while process.poll() is None and time.monotonic() < deadline:
        if answers(port, process.pid):
            return port, process
        time.sleep(0.05)
    process.kill()
    process.wait(10)
    said = log(port).read_text(errors="replace")[-1000:] if log(port).exists() else ""
    raise RuntimeError(f"redis-server on port {port} did not start: {said}")


@contextmanager
def redis_server(
    directory: Path, *options: str, pick: Callable[[], int] = free_port
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A private plain redis-server (no persistence) with ``options``, storing in
    ``directory``, on a port from ``pick``: its port and process, killed on the way out.
    A port lost to another process before redis-server bound it is replaced."""

    def log(port: int) -> Path:
        return directory / f"redis-{port}.log"

    def argv(port: int) -> list[str]:
        return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(directory), "--logfile", str(log(port)),
                *options]  # fmt: skip

    port, process = on_free_ports(lambda: start_redis(argv, log, pick))
    try:
        yield port, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def launcher_redis(base: Settings) -> tuple[Settings, RedisServer]:
    """The stack launcher's Redis started, ready, on a port free a moment ago: ``base``
    with that port (and URL), and the server, for the test to stop (and restart on the
    same port, as a crash recovery would)."""

    def start() -> tuple[Settings, RedisServer]:
        port = free_port()
        url = f"redis://127.0.0.1:{port}/0"
        settings = base.model_copy(update={"redis_port": port, "redis_url": url})
        server = RedisServer(settings)
        pid = server.start()
        try:
            server.wait_ready(pid)
            # A PING answered by another process's Redis on the port is not ours.
            if not _ours_answers(port, pid):
                raise OSError(errno.EADDRINUSE, f"port {port} is served by another Redis")
        except BaseException:
            server.stop()
            raise
        return settings, server

    return on_free_ports(start)


def stack_up_on_free_ports(
    argv: Sequence[str],
    environment: Callable[[], Mapping[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Mapping[str, str]:
    """``switchyard <argv>`` (a ``stack up``) run in this process with the variables
    ``environment()`` gives set (it picks the ports, and a fresh home when Kafka's are
    among them: a broker's data is formatted with its ports), and again with new ones,
    after a ``stack down``, while a start fails on a port taken meanwhile. The
    variables it ran with."""

    def up() -> Mapping[str, str]:
        found = environment()
        for name, value in found.items():
            monkeypatch.setenv(name, value)
        if main(list(argv)) != 0:
            said = capsys.readouterr().err
            main(["stack", "down"])
            raise RuntimeError(f"switchyard {' '.join(argv)} failed: {said}")
        return found

    return on_free_ports(up)


def launcher_broker(
    base: Settings, secrets: StackSecrets | None = None
) -> tuple[Settings, KafkaBroker]:
    """The stack launcher's Kafka broker started, ready, on ports free a moment ago (in
    a home of its own under ``base.home`` per attempt: a broker's data is formatted with
    its ports): ``base`` with those ports and home, and the broker, for the test to stop."""

    def start() -> tuple[Settings, KafkaBroker]:
        port, controller = free_port(), free_port()
        settings = base.model_copy(update={
            "home": base.home / f"kafka-{port}", "kafka_port": port,
            "kafka_controller_port": controller,
            "kafka_bootstrap_servers": f"127.0.0.1:{port}",
        })  # fmt: skip
        broker = KafkaBroker(settings, secrets=secrets)
        pid = broker.start()
        try:
            broker.wait_ready(pid)
        except BaseException:
            broker.stop()
            raise
        return settings, broker

    return on_free_ports(start)


def run_on_free_ports(
    command: Callable[[], Sequence[str]], **options: Any
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(command(), capture_output=True, text=True, **options)``, where
    ``command()`` picks the ports (and a fresh home) it passes; run again with new ones
    while a run fails saying a port was taken (in its stderr) before it bound it."""

    def run() -> subprocess.CompletedProcess[str]:
        done = subprocess.run(command(), capture_output=True, text=True, check=False, **options)
        if done.returncode != 0 and said_clash(done.stderr):
            raise OSError(errno.EADDRINUSE, f"a port was taken: {done.stderr[-3000:]}")
        return done

    return on_free_ports(run)


async def until_ready(
    process: asyncio.subprocess.Process, ready: Path, log: Callable[[], str], within: float
) -> None:
    """Until a service of ours writes its ``--ready-file`` or exits. One that exited
    saying a port was taken raises ``OSError`` (``EADDRINUSE``), for
    :func:`on_free_ports_async` to start it again on others; any other exit fails with
    its log. Stopping it on failure is the caller's."""

    async def started() -> bool:
        return os.path.exists(ready) or process.returncode is not None  # noqa: ASYNC240

    await until(started, within=within)
    if process.returncode is not None and said_clash(log()):
        raise OSError(errno.EADDRINUSE, f"a port was taken:\n{log()}")
    assert process.returncode is None, f"exited during start-up:\n{log()}"
