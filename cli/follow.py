"""Following a run live: its event stream, what changed at each event, how it ended.

The stream is ``GET /v1/workflows/runs/{wfr}/stream`` (Server-Sent Events): ``id: <seq>``
and ``data: <RunEvent JSON>`` per event, ``: keep-alive`` comments, and after
``run.completed`` one ``event: end``, then the server closes. A dropped connection is
resumed with ``Last-Event-ID``, so nothing is missed or repeated. An event says that
something changed; the run itself (``GET``) says what, so each event refreshes it and
:class:`Changes` reports the node runs whose state moved and the log lines not yet shown.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from switchyard.cli import exits
from switchyard.cli.exits import CliError
from switchyard.consumers import ApiError, RunsClient

Run = dict[str, Any]
OnEvent = Callable[[dict[str, Any]], Awaitable[None]]

_RECONNECTS = 5  # in a row, without an event in between
# Heartbeats come every 15 s: a minute of silence is a dead connection.
_TIMEOUT = httpx.Timeout(30.0, read=60.0)


@dataclass(frozen=True)
class Message:
    id: str | None
    event: str
    data: str


async def messages(lines: AsyncIterator[str]) -> AsyncIterator[Message]:
    """The SSE messages of a stream of lines (comments skipped, multi-line data joined)."""
    event_id: str | None = None
    event, data = "message", list[str]()
    async for line in lines:
        if not line:
            if data or event != "message":
                yield Message(event_id, event, "\n".join(data))
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            event_id = value
        elif name == "event":
            event = value
        elif name == "data":
            data.append(value)


async def stream_events(client: RunsClient, run_id: str, on_event: OnEvent) -> None:
    """Call ``on_event`` with each run event, in order, until the stream's end."""
    last_id: str | None = None
    failures = 0
    while True:
        headers = {"Authorization": f"Bearer {await client.access_token()}"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        path = f"/v1/workflows/runs/{run_id}/stream"
        try:
            async with client.http.stream("GET", path, headers=headers, timeout=_TIMEOUT) as got:
                if got.status_code >= 400:
                    await got.aread()
                    raise ApiError.of(got)
                async for message in messages(got.aiter_lines()):
                    if message.event == "end":
                        return
                    failures = 0
                    last_id = message.id
                    await on_event(json.loads(message.data))
            # Closed without `end` (a bridge restart): resume where it stopped.
        except httpx.TransportError:  # a drop, a read timeout: reconnect and resume
            failures += 1
            if failures > _RECONNECTS:
                raise
            await asyncio.sleep(0.2 * failures)


async def get_run(client: RunsClient, run_id: str) -> Run:
    response = await client.request("GET", f"/v1/workflows/runs/{run_id}")
    run: Run = response.json()["workflowRun"]
    return run


def node_line(node_run: dict[str, Any]) -> str:
    node = node_run.get("node", {}).get("identifier", "?")
    state = node_run.get("status", "?")
    if node_run.get("result"):
        state += f" {node_run['result']}"
    kind = node_run.get("nodeConfigType") or "-"
    return f"{node} ({kind}) {state}  {node_run.get('identifier', '')}"


@dataclass
class Changes:
    """What a new look at a run (or a new event) shows that the last one did not."""

    states: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    logs_seen: dict[str, int] = field(default_factory=dict)

    def moved(self, event: dict[str, Any]) -> bool:
        """Whether the event changes its node run's (or run's) status or result: a
        ``nodeRun.updated`` that only added logs does not."""
        key = event.get("nodeRunId") or event.get("runId") or ""
        state = (event.get("status"), event.get("result"))
        if self.states.get(key) == state:
            return False
        self.states[key] = state
        return True

    def nodes(self, run: Run) -> list[dict[str, Any]]:
        moved = []
        for node_run in run.get("nodeRuns", []):
            state = (node_run.get("status"), node_run.get("result"))
            if self.states.get(node_run["identifier"]) != state:
                self.states[node_run["identifier"]] = state
                moved.append(node_run)
        return moved

    def logs(self, run: Run) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(node run, log entry) for each log line not returned before, in order."""
        new = []
        for node_run in run.get("nodeRuns", []):
            entries = node_run.get("nodeRunLogs") or []
            seen = self.logs_seen.get(node_run["identifier"], 0)
            new += [(node_run, entry) for entry in entries[seen:]]
            self.logs_seen[node_run["identifier"]] = len(entries)
        return new


def event_line(event: dict[str, Any], run: Run) -> str:
    """One run event as a line: the node run's (or the run's) new state."""
    state = str(event.get("status"))
    if event.get("result"):
        state += f" {event['result']}"
    at = str(event.get("at", ""))[11:19]
    if not event.get("nodeRunId"):
        return f"{at}  run {event.get('runId')} {state}"
    kinds = {nr.get("identifier"): nr.get("nodeConfigType") for nr in run.get("nodeRuns", [])}
    kind = kinds.get(event["nodeRunId"]) or "-"
    return f"{at}  {event.get('nodeIdentifier')} ({kind}) {state}  {event['nodeRunId']}"


def run_line(run: Run) -> str:
    result = f" {run['result']}" if run.get("result") else ""
    return f"run {run['identifier']} {run.get('status')}{result}"


def exit_code(run: Run) -> int:
    """0 for SUCCESS, 1 FAILED, 3 CANCELLED (see :mod:`switchyard.cli.exits`)."""
    return exits.BY_RESULT.get(str(run.get("result")), exits.REFUSED)


async def until_done(
    client: RunsClient, run_id: str, on_run: Callable[[Run, dict[str, Any] | None], None],
    within: float | None,
) -> Run:  # fmt: skip
    """Follow the run to its end, calling ``on_run`` with the run as each event left it
    (first once before any event); the completed run."""
    run = await get_run(client, run_id)
    on_run(run, None)

    async def refresh(event: dict[str, Any]) -> None:
        nonlocal run
        run = await get_run(client, run_id)
        on_run(run, event)

    try:
        async with asyncio.timeout(within):
            # Even for a completed run: the stream replays its events, then ends.
            await stream_events(client, run_id, refresh)
    except TimeoutError:
        raise CliError(
            f"--timeout: run {run_id} is still {run.get('status')} after {within:g} s",
            exits.TIMED_OUT,
        ) from None
    if run.get("status") != "COMPLETED":  # the stream ended before our last GET saw it
        run = await get_run(client, run_id)
    return run
