"""Private secured servers for tests of TLS, AUTH and SASL connections.

``secured_redis()`` starts a ``redis-server`` that accepts only TLS (``--port 0``,
``--tls-port``) and only a password (``--requirepass``). ``secured_kafka()`` starts the
launcher's secured broker (``stack up --secure``'s), whose client listener is SASL_SSL
with a SCRAM-SHA-512 user made when its storage is formatted. Both stop their server and
remove its files on the way out and fail loudly when a tool is missing. Nothing here
touches the shared test stack.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from switchyard.cli.stack.secure import StackSecrets
from switchyard.cli.stack.tls import Certificates
from switchyard.schemas.settings import Settings
from tests.ports import launcher_broker, on_free_ports, start_redis

REPO = Path(__file__).resolve().parent.parent
_START_WITHIN_S = 30.0


def _tls_answers(port: int, ca: Path) -> bool:
    """True once a TLS handshake with the server on ``port`` succeeds."""
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), 1) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1"),
        ):
            return True
    except OSError:
        return False


@dataclass
class SecuredRedis:
    port: int
    password: str


def _start_redis(
    certs: Certificates, password: str, data: Path
) -> tuple[int, subprocess.Popen[bytes]]:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise RuntimeError("redis-server is not installed: apt-get install redis-server (7.x)")

    def log(port: int) -> Path:
        return data / f"redis-{port}.log"

    # redis-server can't be told "any port" for TLS (--port 0 turns plain TCP off): a
    # server that loses its port before it binds it is started again on another.
    def argv(port: int) -> list[str]:
        return [redis_server, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                "--tls-cert-file", str(certs.server_cert), "--tls-key-file", str(certs.server_key),
                "--tls-ca-cert-file", str(certs.ca_cert), "--tls-auth-clients", "no",
                "--requirepass", password, "--dir", str(data), "--save", "",
                "--appendonly", "no", "--logfile", str(log(port))]  # fmt: skip

    # A handshake with a certificate of our CA is this server's, not another's.
    def answers(port: int, _: int) -> bool:
        return _tls_answers(port, certs.ca_cert)

    return on_free_ports(lambda: start_redis(argv, log, answers=answers))


@contextmanager
def secured_redis(certs: Certificates, password: str) -> Iterator[SecuredRedis]:
    """A TLS-only, password-protected redis-server on a free port."""
    with tempfile.TemporaryDirectory(prefix="sy-tls-redis-") as data:
        port, process = _start_redis(certs, password, Path(data))
        try:
            yield SecuredRedis(port, password)
        finally:
            process.kill()
            process.wait(10)


@dataclass
class SecuredKafka:
    bootstrap: str  # the SASL_SSL listener
    user: str
    password: str


@contextmanager
def secured_kafka(certs: Certificates, user: str, password: str) -> Iterator[SecuredKafka]:
    """A single KRaft broker of ``stack up --secure``'s kind (a SASL_SSL client listener
    with a SCRAM-SHA-512 user, TLS to its controller) on a free port."""
    secrets = StackSecrets(certs, user, password, redis_password="unused")
    with tempfile.TemporaryDirectory(prefix="sy-sasl-kafka-") as root:
        base = Settings(home=Path(root), cache_home=REPO / ".switchyard" / "cache",
                        kafka_heap="256m")  # fmt: skip
        settings, broker = launcher_broker(base, secrets)
        try:
            yield SecuredKafka(f"127.0.0.1:{settings.kafka_port}", user, password)
        finally:
            broker.stop()
