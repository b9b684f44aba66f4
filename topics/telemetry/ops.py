"""The ops endpoints of a process that serves no HTTP of its own (the engine, the
executors, timers, scheduler, trigger matcher, an SDK worker that opts in):

* ``GET /metrics``: Prometheus' text format, the process's default registry;
* ``GET /healthz``: 200 while the event loop answers (liveness);
* ``GET /readyz``: 200 when every readiness check passes, else 503; the body names
  each check and what it found, so an operator sees why.

Served by uvicorn on the process's own event loop, so a loop that is stuck stops
answering ``/healthz`` too, which is what a liveness probe is for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from switchyard.topics.telemetry.metrics import refreshers

log = logging.getLogger("switchyard.ops")

# One readiness check: returns what it found (shown in /readyz), raises or returns
# ``Check.failed`` when the process is not ready.
CheckFn = Callable[[], Awaitable["Check"]]
_CHECK_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str

    @staticmethod
    def passed(detail: str = "ok") -> Check:
        return Check(True, detail)

    @staticmethod
    def failed(detail: str) -> Check:
        return Check(False, detail)


async def run_checks(checks: Mapping[str, CheckFn]) -> tuple[bool, dict[str, dict[str, object]]]:
    """Every check at once, each bounded in time; (all passed, what each found)."""

    async def one(check: CheckFn) -> Check:
        try:
            return await asyncio.wait_for(check(), _CHECK_TIMEOUT_S)
        except TimeoutError:
            return Check.failed(f"no answer within {_CHECK_TIMEOUT_S:.0f} s")
        except Exception as error:  # a failing check is the finding, not a crash
            return Check.failed(repr(error))

    names = list(checks)
    found = await asyncio.gather(*(one(checks[n]) for n in names))
    body = {n: {"ok": c.ok, "detail": c.detail} for n, c in zip(names, found, strict=True)}
    return all(c.ok for c in found), body


def ops_routes(
    checks: Mapping[str, CheckFn], registry: CollectorRegistry = REGISTRY
) -> list[Route]:
    """The three routes, for an app of one's own (the bridge mounts them too)."""

    async def metrics(_: Request) -> Response:
        for refresh in refreshers():
            try:
                await asyncio.wait_for(refresh(), _CHECK_TIMEOUT_S)
            except Exception as error:  # a scrape shows the rest, and the last values
                log.warning("metrics refresher %s failed: %r", refresh, error)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True})

    async def readyz(_: Request) -> Response:
        ready, body = await run_checks(checks)
        return JSONResponse({"ok": ready, "checks": body}, status_code=200 if ready else 503)

    return [
        Route("/metrics", metrics, include_in_schema=False),
        Route("/healthz", healthz, include_in_schema=False),
        Route("/readyz", readyz, include_in_schema=False),
    ]


class _Server(uvicorn.Server):
    # The process handles SIGTERM itself (drain, then exit): uvicorn must not take it.
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class OpsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` (port 0: not served)."""

    def __init__(self, host: str, port: int, checks: Mapping[str, CheckFn] | None = None) -> None:
        self.host = host
        self.port = port
        self.checks: dict[str, CheckFn] = dict(checks or {})
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str | None:
        return f"http://{self.host}:{self.port}" if self.port else None

    def add_check(self, name: str, check: CheckFn) -> None:
        self.checks[name] = check

    async def start(self) -> None:
        if not self.port:
            return
        app = Starlette(routes=ops_routes(self.checks))
        config = uvicorn.Config(
            app, host=self.host, port=self.port, log_level="warning", lifespan="off",
            log_config=None,  # its records go through the process's handler (JSON or text)
            access_log=False,
        )  # fmt: skip
        # Bound here, not by uvicorn: a taken port then raises OSError (EADDRINUSE) to
        # the caller, where uvicorn would sys.exit() inside its task.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.create_server((self.host, self.port), family=family)
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[listener]))
        while not self._server.started:
            if self._task.done():
                listener.close()
                await self._task
                raise OSError(f"ops endpoints did not start on {self.host}:{self.port}")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await self._task
        self._server = self._task = None

    async def __aenter__(self) -> OpsServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
