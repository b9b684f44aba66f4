"""The test port helpers (``tests/ports.py``): a server bound to 0 reports the port it got,
and a start whose port is taken meanwhile (here by the test itself, on purpose) is
detected and done again on another port."""

from __future__ import annotations

import errno
import itertools
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from switchyard.schemas.settings import Settings
from switchyard.topics.telemetry.ops import OpsServer
from tests.observability import processes
from tests.observability.processes import launched
from tests.ports import (
    PortsKeptClashing,
    clashed,
    free_port,
    on_a_free_port,
    on_free_ports,
    redis_server,
    serving_app,
)


@contextmanager
def held() -> Iterator[int]:
    """A port this test listens on, so any server told to bind it finds it taken."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


async def test_an_app_served_on_port_0_reports_the_port_it_got() -> None:
    async def hello(_: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    async with serving_app(Starlette(routes=[Route("/", hello)])) as url:
        port = int(url.rsplit(":", 1)[1])
        assert port != 0
        async with httpx.AsyncClient() as http:
            answer = await http.get(url)
        assert answer.text == "hello"


async def test_an_ops_server_on_a_taken_port_raises_address_in_use() -> None:
    with held() as port, pytest.raises(OSError, match="while attempting to bind") as raised:
        await OpsServer("127.0.0.1", port).start()
    assert raised.value.errno == errno.EADDRINUSE


async def test_a_server_whose_first_port_is_taken_starts_on_another() -> None:
    tried: list[int] = []
    with held() as taken:

        def ops(port: int) -> OpsServer:
            # The first attempt is given the port this test holds.
            tried.append(taken if not tried else port)
            return OpsServer("127.0.0.1", tried[-1])

        async with on_a_free_port(ops) as (port, server):
            assert tried[0] == taken
            assert port == tried[-1] != taken
            async with httpx.AsyncClient() as http:
                answer = await http.get(f"{server.url}/healthz")
            assert answer.json() == {"ok": True}


def test_a_private_redis_whose_first_port_is_taken_starts_on_another(tmp_path: Path) -> None:
    with held() as taken:
        ports = itertools.chain([taken], iter(free_port, None))
        with redis_server(tmp_path, pick=lambda: next(ports)) as (port, process):
            assert port != taken
            client = redis.Redis(port=port)
            try:
                # Ours, not some other Redis on the port: the server names our process.
                assert client.info("server")["process_id"] == process.pid
            finally:
                client.close()
    said = (tmp_path / f"redis-{taken}.log").read_text()
    assert "Address already in use" in said, said


def test_a_failure_that_is_no_port_clash_is_raised_at_once() -> None:
    calls = 0

    def start() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("the config is wrong")

    with pytest.raises(RuntimeError, match="the config is wrong"):
        on_free_ports(start)
    assert calls == 1


def test_a_port_taken_at_every_attempt_says_so() -> None:
    def start() -> None:
        raise OSError(errno.EADDRINUSE, "Address already in use")

    with pytest.raises(PortsKeptClashing, match="each of 3 starts found a port taken"):
        on_free_ports(start, attempts=3)


def _caused_by(error: Exception, cause: Exception) -> Exception:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.EADDRINUSE, "whatever the text"),
        RuntimeError("redis exited:\nbind: Address already in use"),
        RuntimeError("port 123 is in use by another program (?); stop it"),
        RuntimeError("the ops port 127.0.0.1:9 is taken by another process: stop it"),
        _caused_by(
            RuntimeError("the broker did not start"),
            RuntimeError("java.net.BindException: Address already in use"),
        ),
    ],
)
def test_what_counts_as_a_port_clash(error: Exception) -> None:
    assert clashed(error)


def test_other_failures_are_not_port_clashes() -> None:
    assert not clashed(OSError(errno.ECONNREFUSED, "Connection refused"))
    assert not clashed(RuntimeError("redis-server on port 5 did not start: out of memory"))


async def test_a_service_whose_ops_port_is_taken_is_launched_again_on_another(
    topics: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with held() as taken:
        # The first port chosen (the engine's ops port) is the one this test holds.
        ports = itertools.chain([taken], iter(free_port, None))
        monkeypatch.setattr(processes, "free_port", lambda: next(ports))
        async with launched(topics, ["engine"], tmp_path) as stack:
            port = stack.settings.engine_ops_port
            assert port != taken
            async with httpx.AsyncClient() as http:
                answer = await http.get(f"{stack.ops_url('engine')}/healthz")
            assert answer.json() == {"ok": True}
