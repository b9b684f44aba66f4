"""The ops endpoints' start of each long-running process (the checks its ``/readyz``
runs are in ``topics/telemetry/checks.py``)."""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import AsyncIterator, Mapping

from switchyard.cli.stack.errors import StackError
from switchyard.schemas.settings import Settings
from switchyard.topics.telemetry.ops import CheckFn, OpsServer


class OpsPortTaken(StackError):
    """The ops port of a process is bound by something else."""


def _ensure_free(host: str, port: int, setting: str) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # As uvicorn binds: a port in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            raise OpsPortTaken(
                f"the ops port {host}:{port} is taken by another process: stop it, or set "
                f"{setting} to a free port (0: serve no /metrics, /healthz, /readyz)"
            ) from error


@contextlib.asynccontextmanager
async def ops_endpoints(
    settings: Settings, name: str, checks: Mapping[str, CheckFn]
) -> AsyncIterator[OpsServer]:
    """``/metrics``, ``/healthz`` and ``/readyz`` of process ``name`` on its ops port
    (``SWITCHYARD_<NAME>_OPS_PORT``) for the duration of the block."""
    port = settings.ops_port(name)
    if port:
        _ensure_free(settings.ops_host, port, f"SWITCHYARD_{name.upper()}_OPS_PORT")
    server = OpsServer(settings.ops_host, port, checks)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
