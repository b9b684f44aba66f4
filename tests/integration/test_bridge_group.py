"""``switchyard bridge --processes 2`` as a real subprocess on the test stack: two
children answer on the one port, share what they store (a workflow made through one
is read through the other; a run's SSE stream works), serve /metrics on ports of
their own, and stop with the parent on SIGTERM; a child that dies takes the group
down."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import httpx
import orjson
import pytest
from pydantic import SecretStr

from switchyard.bridge.credentials import hash_secret
from switchyard.cli.bridge_group import PROCESS_HEADER
from switchyard.cli.stack.full import environment
from switchyard.schemas.settings import Settings
from tests.helpers import private_redis_db, until
from tests.observability.processes import launched
from tests.ports import free_port, free_ports, on_free_ports_async, until_ready

pytestmark = pytest.mark.integration

SECRET = "bridge-group-secret"


@dataclass
class Group:
    settings: Settings
    process: asyncio.subprocess.Process
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.bridge_port}"

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
async def mine(topics: Settings, session_tag: str, tmp_path: Path) -> Settings:
    auth = tmp_path / "auth.json"
    admin = {"clientId": "admin", "clientSecretHash": hash_secret(SECRET),
             "email": "admin@example.com", "role": "Admin", "teams": []}  # fmt: skip
    auth.write_bytes(orjson.dumps({"users": [admin], "machines": []}))
    return private_redis_db(topics, session_tag).model_copy(update={
        "auth_file": auth, "token_secret": SecretStr(uuid.uuid4().hex), "home": tmp_path,
    })  # fmt: skip


async def _start_group(settings: Settings, home: Path) -> Group:
    """One start on ports free a moment ago; a group that lost one to another process
    meanwhile fails as a port clash (``EADDRINUSE``), to be started again on others."""
    settings = settings.model_copy(
        update={"bridge_port": free_port(), "bridge_ops_port": free_ports(2)}
    )
    ready, log = home / "bridge.ready", home / "bridge.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchyard.cli.main", "bridge", "--processes", "2",
            "--ready-file", str(ready),
            env={**os.environ, **environment(settings)}, stdout=sink, stderr=sink,
        )  # fmt: skip
    group = Group(settings, process, log)

    try:
        await until_ready(process, ready, group.logs, within=60)
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    return group


@contextlib.asynccontextmanager
async def bridge_group(settings: Settings, home: Path) -> AsyncIterator[Group]:
    group = await on_free_ports_async(lambda: _start_group(settings, home))
    try:
        assert int((home / "bridge.ready").read_text()) == group.process.pid
        yield group
    finally:
        if group.process.returncode is None:
            group.process.kill()
            await group.process.wait()


async def fresh(group: Group, method: str, path: str, **kwargs: object) -> httpx.Response:
    """One request on a connection of its own: the kernel picks the child for it."""
    async with httpx.AsyncClient(base_url=group.url, timeout=10) as client:
        return await client.request(method, path, **kwargs)  # type: ignore[arg-type]


def answered_by(response: httpx.Response) -> int:
    _index, pid = response.headers[PROCESS_HEADER].split()
    return int(pid)


async def from_other(group: Group, pid: int, path: str, headers: dict[str, str]) -> httpx.Response:
    """GET ``path`` on fresh connections until a child other than ``pid`` answers."""

    async def once() -> httpx.Response:
        return await fresh(group, "GET", path, headers=headers)

    return await until(once, lambda r: answered_by(r) != pid, within=30)


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, exited but not yet reaped, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


async def test_two_children_share_the_port_the_data_and_stop_with_the_parent(
    mine: Settings, tmp_path: Path
) -> None:
    identifier = f"group-{uuid.uuid4().hex[:8]}"
    async with (
        launched(mine, ["engine"], tmp_path) as engine,
        bridge_group(mine, tmp_path) as group,
    ):
        # Both children answer on the one port, each a child of the group's parent.
        seen: set[int] = set()

        async def pids() -> set[int]:
            answers = await asyncio.gather(*(fresh(group, "GET", "/healthz") for _ in range(8)))
            seen.update(answered_by(a) for a in answers)
            return seen

        await until(pids, lambda found: len(found) == 2, within=30)
        assert {parent_of(pid) for pid in seen} == {group.process.pid}

        credentials = {"clientId": "admin", "clientSecret": SECRET}
        token = (await fresh(group, "POST", "/v1/auth/access_token", json=credentials)).json()
        auth = {"Authorization": f"Bearer {token['accessToken']}"}
        trigger = {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}}
        body = {"identifier": identifier, "connections": [], "nodes": [trigger]}
        made = await fresh(group, "POST", "/v1/workflows", json=body, headers=auth)
        assert made.status_code == HTTPStatus.CREATED, made.text
        read = await from_other(group, answered_by(made), f"/v1/workflows/{identifier}", auth)
        assert read.status_code == HTTPStatus.OK, read.text
        assert read.json()["workflow"]["identifier"] == identifier

        run = await fresh(group, "POST", f"/v1/workflows/{identifier}/runs", json={}, headers=auth)
        assert run.status_code in {HTTPStatus.CREATED, HTTPStatus.ACCEPTED}, run.text
        run_id = run.json()["workflowRun"]["identifier"]
        async with (
            httpx.AsyncClient(base_url=group.url, timeout=30) as client,
            client.stream("GET", f"/v1/workflows/runs/{run_id}/stream", headers=auth) as stream,
        ):
            assert stream.status_code == HTTPStatus.OK
            text = "".join([chunk async for chunk in stream.aiter_text()])
        assert "run.completed" in text, text
        assert text.endswith("event: end\ndata: {}\n\n"), text
        assert engine.processes["engine"].returncode is None

        # /metrics on the shared port would be a random child's: refused, naming the
        # ports; each child's own ops port serves its own counters.
        refused = await fresh(group, "GET", "/metrics")
        assert refused.status_code == HTTPStatus.NOT_FOUND
        first = group.settings.bridge_ops_port
        assert f"{first}..{first + 1}" in refused.json()["message"]
        for port in (first, first + 1):
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as ops:
                scraped = await ops.get("/metrics")
                assert scraped.status_code == HTTPStatus.OK
                assert "switchyard_http_requests_total" in scraped.text
                readyz = await ops.get("/readyz")
                assert readyz.status_code == HTTPStatus.OK, readyz.text

        # SIGTERM to the parent stops both children, and the parent exits 0.
        group.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(group.process.wait(), 30) == 0, group.logs()
        for pid in seen:
            assert not running(pid), f"child {pid} outlived the parent"


async def test_a_child_that_dies_takes_the_group_down_loudly(
    mine: Settings, tmp_path: Path
) -> None:
    async with bridge_group(mine, tmp_path) as group:
        victim = answered_by(await fresh(group, "GET", "/healthz"))
        os.kill(victim, signal.SIGKILL)
        assert await asyncio.wait_for(group.process.wait(), 30) == 1
        assert f"pid {victim}) exited with status -9" in group.logs()
        with pytest.raises(httpx.ConnectError):
            await fresh(group, "GET", "/healthz")


async def test_children_stop_when_the_parent_is_killed_outright(
    mine: Settings, tmp_path: Path
) -> None:
    async with bridge_group(mine, tmp_path) as group:
        seen: set[int] = set()

        async def pids() -> set[int]:
            answers = await asyncio.gather(*(fresh(group, "GET", "/healthz") for _ in range(8)))
            seen.update(answered_by(a) for a in answers)
            return seen

        await until(pids, lambda found: len(found) == 2, within=30)
        group.process.kill()  # no chance to pass anything on
        await group.process.wait()

        async def alive() -> set[int]:
            return {pid for pid in seen if running(pid)}

        await until(alive, lambda found: not found, within=30)
