"""Live streams (SSE) against real Kafka, Redis, engine and a bridge on a port: the
per-run stream's order, ids and end, resume across a bridge restart, heartbeats,
404/422s; the list stream's filters, visibility and resume by cursor."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from switchyard.engine.service import EngineService
from switchyard.engine.store import keys
from switchyard.engine.store.client import redis_client
from switchyard.schemas import RunEvent, encode
from switchyard.schemas.settings import Settings
from switchyard.topics.partitioning import partition_of
from tests.bridge.sse import Message, Server, live_bridge, messages, take, take_until
from tests.bridge.support import Api, kafka_workflow
from tests.helpers import private_redis_db, until

pytestmark = pytest.mark.integration

DONE = {"status": "COMPLETED", "result": "SUCCESS"}


def _ended(message: Message) -> bool:
    return message.event == "end"


def _work(run: dict[str, Any]) -> str:
    return str(
        next(nr["identifier"] for nr in run["nodeRuns"] if nr["node"]["identifier"] == "work")
    )


async def _complete(api: Api, run: dict[str, Any]) -> None:
    response = await api.call("PATCH", f"/v1/workflows/nodes/runs/{_work(run)}", json=DONE)
    assert response.status_code == 200, response.text


async def _final_seq(api: Api, run_id: str) -> int:
    state = await until(
        lambda: api.ctx.runs.get(run_id), lambda s: s is not None and s.is_completed
    )
    assert state is not None
    return state.seq


def _headers(api: Api, who: str, last: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {api.token(who)}"}
    if last is not None:
        headers["Last-Event-ID"] = last
    return headers


async def test_a_run_streams_every_event_in_seq_order_then_ends(
    api: Api, engine: EngineService, bridge_settings: Settings, wf_id: str
) -> None:
    await api.define(kafka_workflow(wf_id))
    run = await api.trigger(wf_id, {"name": "streamed"})
    run_id = run["identifier"]
    async with (
        live_bridge(bridge_settings) as bridge,
        httpx.AsyncClient(base_url=bridge.url) as http,
    ):
        path = f"/v1/workflows/runs/{run_id}/stream"
        async with http.stream("GET", path, headers=_headers(api, "admin")) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            source = messages(response)
            first = await take(source, 1)  # history is there before the run moves on
            await _complete(api, run)
            rest = await take_until(source, _ended)
            assert [m async for m in source] == []  # closed after the end message
    got = first + rest
    assert got[-1] == Message(event="end", data="{}")
    events = got[:-1]
    seqs = [int(m.id or 0) for m in events]
    assert seqs == list(range(1, await _final_seq(api, run_id) + 1))
    for message in events:
        assert message.data is not None
        event = RunEvent.model_validate_json(message.data)
        assert event.seq == int(message.id or 0)
        assert encode(event).decode() == message.data  # the topic's bytes, unchanged
        assert event.run_id == run_id
    assert events[-1].json()["kind"] == "run.completed"

    # A completed run still streams its history, and a resume after its last event
    # is just the end.
    async with (
        live_bridge(bridge_settings) as bridge,
        httpx.AsyncClient(base_url=bridge.url) as http,
    ):
        async with http.stream("GET", path, headers=_headers(api, "admin")) as response:
            again = [m async for m in messages(response)]
        assert [m.id for m in again[:-1]] == [m.id for m in events]
        last = str(seqs[-1])
        async with http.stream("GET", path, headers=_headers(api, "admin", last)) as response:
            assert [m async for m in messages(response)] == [Message(event="end", data="{}")]
        # The completed run's stream has a lifetime; once gone, the stream just ends.
        stream_key = keys.run_events(run_id, api.ctx.runs.tag_of(run_id))
        assert 0 < await api.ctx.redis.ttl(stream_key) <= keys.RUN_EVENTS_TTL_SECONDS
        await api.ctx.redis.delete(stream_key)
        async with http.stream("GET", path, headers=_headers(api, "admin", "2")) as response:
            assert [m async for m in messages(response)] == [Message(event="end", data="{}")]


async def test_resume_by_last_event_id_across_a_bridge_restart_loses_and_repeats_nothing(
    api: Api, engine: EngineService, bridge_settings: Settings, wf_id: str
) -> None:
    await api.define(kafka_workflow(wf_id))
    run = await api.trigger(wf_id, {"name": "restart"})
    run_id = run["identifier"]
    path = f"/v1/workflows/runs/{run_id}/stream"
    async with (
        live_bridge(bridge_settings) as first_bridge,
        httpx.AsyncClient(base_url=first_bridge.url) as http,
        http.stream("GET", path, headers=_headers(api, "admin")) as response,
    ):
        before = await take(messages(response), 2)
        # The bridge dies mid-run, its client connected.
        await first_bridge.stop()
    # Meanwhile the run moves on and completes (through another bridge).
    await _complete(api, run)
    final = await _final_seq(api, run_id)
    headers = _headers(api, "admin", before[-1].id)
    async with (
        live_bridge(bridge_settings) as second_bridge,
        httpx.AsyncClient(base_url=second_bridge.url) as http,
        http.stream("GET", path, headers=headers) as response,
    ):
        assert response.status_code == 200
        after = await take_until(messages(response), _ended)
    seqs = [int(m.id or 0) for m in before + after[:-1]]
    assert seqs == list(range(1, final + 1))
    assert [m.json()["seq"] for m in before + after[:-1]] == seqs


async def test_heartbeats_keep_an_idle_stream_alive(
    api: Api, engine: EngineService, bridge_settings: Settings, wf_id: str
) -> None:
    await api.define(kafka_workflow(wf_id))
    run = await api.trigger(wf_id, {"name": "idle"})
    settings = bridge_settings.model_copy(update={"stream_heartbeat_seconds": 0.2})
    async with live_bridge(settings) as bridge, httpx.AsyncClient(base_url=bridge.url) as http:
        path = f"/v1/workflows/runs/{run['identifier']}/stream"
        async with http.stream("GET", path, headers=_headers(api, "admin")) as response:
            got = await take(messages(response), 8, skip_comments=False)
        beats = [m for m in got if m.comment is not None]
        assert len(beats) >= 2
        assert {m.comment for m in beats} == {"keep-alive"}
        path = "/v1/workflows/runs/stream?workflowIdentifiers=nothing-matches"
        async with http.stream("GET", path, headers=_headers(api, "admin")) as response:
            got = await take(messages(response), 2, skip_comments=False)
        assert [m.comment for m in got] == ["keep-alive", "keep-alive"]


async def test_stream_answers_404_for_hidden_or_missing_runs_and_422_for_bad_ids(
    api: Api, engine: EngineService, bridge_settings: Settings, wf_id: str
) -> None:
    await api.define(kafka_workflow(wf_id, anyone=False))
    hidden = (await api.trigger(wf_id, {"name": "private"}))["identifier"]
    missing = "wfr_" + "0" * 16
    # A list-stream cursor has a position per inbox partition: these are all past the
    # newest entry (unknown), and one position alone is not a cursor of this stream.
    future = ".".join(["99999999999999-0"] * bridge_settings.inbox_partitions)
    async with (
        live_bridge(bridge_settings) as bridge,
        httpx.AsyncClient(base_url=bridge.url) as http,
    ):
        cases = [
            ("member", f"/v1/workflows/runs/{hidden}/stream", None, 404, "not found"),
            ("member", f"/v1/workflows/runs/{missing}/stream", None, 404, "not found"),
            ("admin", "/v1/workflows/runs/wfr_bad/stream", None, 422, "run_id"),
            ("admin", f"/v1/workflows/runs/{hidden}/stream", "x1", 422, "Last-Event-ID"),
            ("admin", f"/v1/workflows/runs/{hidden}/stream", "-3", 422, "Last-Event-ID"),
            ("admin", f"/v1/workflows/runs/{hidden}/stream", "99", 422, "Last-Event-ID"),
            ("admin", "/v1/workflows/runs/stream", "not-a-cursor", 422, "Last-Event-ID"),
            ("admin", "/v1/workflows/runs/stream", future, 409, "Last-Event-ID"),
            ("admin", "/v1/workflows/runs/stream", "99999999999999-0", 422, "Last-Event-ID"),
            ("admin", "/v1/workflows/runs/stream?statuses=DONE", None, 422, "statuses"),
        ]
        for who, path, last, status, named in cases:
            response = await http.get(path, headers=_headers(api, who, last))
            assert response.status_code == status, (path, last, response.text)
            body = response.json()
            assert body["ok"] is False
            assert named in body["message"], body
        unauthenticated = await http.get(f"/v1/workflows/runs/{hidden}/stream")
        assert unauthenticated.status_code == 401


async def test_the_list_stream_sends_only_matching_visible_runs_and_resumes_by_cursor(
    api: Api, engine: EngineService, bridge_settings: Settings, wf_id: str
) -> None:
    other_wf = f"{wf_id}-other"
    private_wf = f"{wf_id}-private"
    await api.define(kafka_workflow(wf_id))
    await api.define(kafka_workflow(other_wf))
    await api.define(kafka_workflow(private_wf, anyone=False))
    query = f"/v1/workflows/runs/stream?workflowIdentifiers={wf_id},{private_wf}"
    async with (
        live_bridge(bridge_settings) as bridge,
        httpx.AsyncClient(base_url=bridge.url) as http,
    ):
        async with (
            http.stream("GET", query, headers=_headers(api, "member")) as member_response,
            http.stream("GET", query, headers=_headers(api, "admin")) as admin_response,
        ):
            assert member_response.status_code == admin_response.status_code == 200
            # Each run is created (its first events applied) before the next starts.
            other = await api.trigger(other_wf, {"name": "unfiltered"})
            hidden = await api.trigger(private_wf, {"name": "hidden"})
            run = await api.trigger(wf_id, {"name": "listed"})
            member_seen = await take_until(
                messages(member_response), lambda m: m.json()["runId"] == run["identifier"]
            )
            admin_source = messages(admin_response)
            # Runs of different partitions come through different streams: the list
            # promises each run's events in order, not one run's before another's.
            wanted, found = {run["identifier"], hidden["identifier"]}, set()

            def both_seen(m: Any) -> bool:
                found.add(m.json()["runId"])
                return wanted <= found

            admin_seen = await take_until(admin_source, both_seen)
        member_runs = {m.json()["runId"] for m in member_seen}
        admin_runs = {m.json()["runId"] for m in admin_seen}
        assert member_runs == {run["identifier"]}
        assert hidden["identifier"] in admin_runs
        assert other["identifier"] not in admin_runs | member_runs
        cursor = member_seen[-1].id
        assert cursor is not None

        # Resume: everything after the cursor, once, through to the run's completion.
        await _complete(api, run)
        final = await _final_seq(api, run["identifier"])
        async with http.stream("GET", query, headers=_headers(api, "member", cursor)) as response:
            assert response.status_code == 200
            resumed = await take_until(
                messages(response), lambda m: m.json()["kind"] == "run.completed"
            )
    seqs = [
        m.json()["seq"] for m in member_seen + resumed if m.json()["runId"] == run["identifier"]
    ]
    assert seqs == list(range(1, final + 1))
    assert len({m.id for m in member_seen + resumed}) == len(member_seen + resumed)


async def test_the_list_stream_resumes_within_its_retention_only(
    bridge_settings: Settings, session_tag: str
) -> None:
    """A cursor whose successors the cap has trimmed is a 409 (the client reloads the
    list); one at or after the oldest kept entry resumes. On a database of this
    session's own, whose events stream the test trims."""
    settings = private_redis_db(bridge_settings, session_tag)
    client = redis_client(settings)
    run_id, partitions = "wfr_" + "1" * 16, settings.inbox_partitions
    # The run's partition's stream; the cursor is a position in each partition's, the
    # other partitions' before their (absent) first entry.
    home = partition_of(run_id, partitions)
    stream = keys.runs_events(keys.tag_of(run_id, partitions))

    def cursor(entry: str) -> str:
        return ".".join(entry if p == home else "0" for p in range(partitions))

    try:
        await client.delete(stream)
        ids = [_text(await client.xadd(stream, {"r": run_id, "e": "{}"})) for _ in range(5)]
        await client.xtrim(stream, maxlen=2, approximate=False)  # ids[0:3] gone
        async with live_bridge(settings) as bridge, httpx.AsyncClient(base_url=bridge.url) as http:
            for entry in ids[:3]:  # ids[2]: the cap keeps no entry to show it was last
                response = await http.get(
                    "/v1/workflows/runs/stream",
                    headers={**_bearer(bridge), "Last-Event-ID": cursor(entry)},
                )
                assert response.status_code == 409, response.text
                assert "retention" in response.json()["message"]
            for entry in ids[3:]:
                headers = {**_bearer(bridge), "Last-Event-ID": cursor(entry)}
                async with http.stream("GET", "/v1/workflows/runs/stream", headers=headers) as ok:
                    assert ok.status_code == 200
    finally:
        await client.delete(stream)
        await client.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bearer(server: Server) -> dict[str, str]:
    ctx = server.app.state.bridge
    actor = ctx.credentials.actor("admin")
    return {"Authorization": f"Bearer {ctx.signer.issue(actor)}"}
