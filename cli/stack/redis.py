"""Debian's ``redis-server`` on loopback, with the append-only file on.

AOF is on: a ``kill -9`` of Redis loses nothing (every write reached the page cache
before the reply). What a power failure can lose is the durability profile's choice
(``SWITCHYARD_DURABILITY``): ``default`` fsyncs every second (up to about a second of
writes), ``durable`` fsyncs before every reply (nothing acknowledged). RDB snapshots
are off so nothing forks under load. ``stack up --secure`` serves TLS only, behind a
password (``secure.py``).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import redis

from switchyard.cli.stack import processes
from switchyard.cli.stack.errors import StackError, ToolMissing
from switchyard.cli.stack.kafka import Say
from switchyard.cli.stack.secure import StackSecrets, redis_options, write_private
from switchyard.schemas.settings import Settings

_REDIS_FIX = "install it (apt-get install -y redis-server)"


def appendfsync(settings: Settings) -> str:
    """Redis's ``appendfsync`` under the stack's durability profile."""
    return "always" if settings.durability == "durable" else "everysec"


def server_argv(
    binary: str,
    port: int,
    home: Path,
    settings: Settings,
    extra: Sequence[str] = (),
    secured: Sequence[str] = (),
) -> list[str]:
    """A launcher's ``redis-server`` on 127.0.0.1:``port``, its data in ``home``, with
    the durability profile's fsync; ``extra`` (a cluster node's options) before the rest.

    With ``secured`` configuration lines (``--secure``: TLS files, passwords) they go
    into ``home``/secure.conf, mode 600, read first, and ``port`` is TLS only."""
    listen = ["--port", str(port)]
    config: list[str] = []
    if secured:
        conf = write_private(home / "secure.conf", "\n".join(secured) + "\n")
        config, listen = [str(conf.resolve())], ["--port", "0", "--tls-port", str(port)]
    return [
        binary,
        *config,
        "--bind", "127.0.0.1",
        *listen,
        *extra,
        "--dir", str(home.resolve()),
        "--appendonly", "yes",
        "--appendfsync", appendfsync(settings),
        "--save", "",
        "--daemonize", "no",
        "--protected-mode", "yes",
    ]  # fmt: skip


def node_client(port: int, secrets: StackSecrets | None, **options: object) -> redis.Redis:
    """A client of the launcher's ``redis-server`` on ``port``; TLS and the password when
    the stack is secured."""
    if secrets is None:
        return redis.Redis(host="127.0.0.1", port=port, **options)  # type: ignore[arg-type]
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        password=secrets.redis_password,
        ssl=True,
        ssl_ca_certs=str(secrets.certs.ca_cert),
        **options,  # type: ignore[arg-type]
    )


def wait_for_ping(
    client: redis.Redis, pid: int, spec: processes.ProcessSpec, timeout: float
) -> None:
    """Until the server behind ``client`` answers PING; a StackError with its log's tail
    if the process ``pid`` exits first, or when ``timeout`` passes. Closes ``client``."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                pass
            if not processes.is_alive(pid):
                log = processes.tail(spec.log_file)
                raise StackError(f"{spec.name} exited during start-up:\n{log}")
            if time.monotonic() > deadline:
                raise StackError(f"{spec.name} did not answer PING in time")
            time.sleep(0.05)
    finally:
        client.close()


class RedisServer:
    """The Redis of the local stack."""

    def __init__(self, settings: Settings, secrets: StackSecrets | None = None) -> None:
        self.settings = settings
        self.secrets = secrets
        self.home = settings.data_dir / "redis"
        scheme = "rediss" if secrets else "redis"
        self.url = f"{scheme}://127.0.0.1:{settings.redis_port}/0"
        self.spec = processes.ProcessSpec(
            name="redis",
            argv=(),
            # redis-server rewrites its process title to "redis-server host:port".
            marker=f"redis-server 127.0.0.1:{settings.redis_port}",
            pid_file=settings.run_dir / "redis.pid",
            log_file=settings.log_dir / "redis.log",
        )

    def pid(self) -> int | None:
        return processes.read_pid(self.spec)

    def start(self, say: Say | None = None) -> int:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ToolMissing("redis-server", _REDIS_FIX)
        port = self.settings.redis_port
        if not processes.wait_port_free("127.0.0.1", port):
            raise StackError(
                f"port {port} is in use by another program ({processes.listeners(port) or '?'}); "
                "stop it or set SWITCHYARD_REDIS_PORT"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        secured = redis_options(self.secrets) if self.secrets else ()
        argv = server_argv(binary, port, self.home, self.settings, secured=secured)
        return processes.start(dataclasses.replace(self.spec, argv=argv))

    def wait_ready(self, pid: int, timeout: float = 30.0) -> None:
        client = node_client(self.settings.redis_port, self.secrets, socket_timeout=1.0)
        wait_for_ping(client, pid, self.spec, timeout)

    def stop(self) -> bool:
        return processes.stop(self.spec, grace_seconds=10.0)
