"""``GET /v1/workflows/runs?stuck=true``: the unfinished runs that wait on nothing.

The engine never makes one, so the test makes one by writing an inconsistent state
straight into Redis (the one place a test writes state) and puts it back after.
Healthy runs (waiting on a worker, in a retry's backoff, cancelling while a call
finishes, completed) never show.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from switchyard.engine.machine.state import dump_state, load_state
from switchyard.engine.service import EngineService
from switchyard.engine.store import keys
from tests.bridge.support import Api, kafka_workflow, node_run, trigger_node
from tests.helpers import until

DONE = {"status": "COMPLETED", "result": "SUCCESS", "output": {}}

Stuck = Callable[[str], Awaitable[None]]


@asynccontextmanager
async def _stuck_maker(api: Api) -> AsyncIterator[Stuck]:
    """``make(run_id)`` marks the run's node runs COMPLETED while the run stays
    IN_PROGRESS (what the engine never writes); every state is put back on exit."""
    originals: dict[str, bytes | str] = {}

    def key(run_id: str) -> str:
        return keys.run(run_id, keys.tag_of(run_id, api.ctx.runs.partitions))

    async def make(run_id: str) -> None:
        raw = await api.ctx.redis.hget(key(run_id), "state")
        assert raw is not None
        originals[run_id] = raw
        state = load_state(raw)
        for nr in state.node_runs:
            nr.status, nr.result, nr.retry_at = "COMPLETED", "SUCCESS", None
        await api.ctx.redis.hset(key(run_id), "state", dump_state(state))

    try:
        yield make
    finally:
        for run_id, raw in originals.items():
            await api.ctx.redis.hset(key(run_id), "state", raw)


async def _stuck_ids(api: Api, who: str = "admin", **params: Any) -> list[str]:
    response = await api.call("GET", "/v1/workflows/runs", who, params={"stuck": "true", **params})
    assert response.status_code == 200, response.text
    runs = response.json()["workflowRuns"]
    for run in runs:
        assert run["status"] != "COMPLETED"
        assert run["waitingOn"] == []
    return [run["identifier"] for run in runs]


async def _finished(api: Api, wf_id: str) -> str:
    run = await api.trigger(wf_id, {"name": "done"})
    nr = node_run(run, "work")["identifier"]
    patched = await api.call("PATCH", f"/v1/workflows/nodes/runs/{nr}", "machine", json=DONE)
    assert patched.status_code == 200, patched.text
    await until(lambda: api.run(run["identifier"]), lambda r: r["status"] == "COMPLETED")
    return str(run["identifier"])


async def test_only_runs_that_wait_on_nothing_are_listed(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    await api.define(kafka_workflow(wf_id))
    healthy = (await api.trigger(wf_id, {"name": "ok"}))["identifier"]
    finished = await _finished(api, wf_id)
    older, newer = [(await api.trigger(wf_id, {"name": n}))["identifier"] for n in ("s1", "s2")]
    assert await _stuck_ids(api, workflowIdentifiers=wf_id) == []
    async with _stuck_maker(api) as make_stuck:
        await make_stuck(older)
        await make_stuck(newer)
        assert await _stuck_ids(api, workflowIdentifiers=wf_id) == [newer, older]  # newest first
        everywhere = await _stuck_ids(api, "machine", limit=1000)
        assert {older, newer} <= set(everywhere)
        assert healthy not in everywhere
        assert finished not in everywhere
        # limit and offset count stuck runs; other filters combine.
        assert await _stuck_ids(api, workflowIdentifiers=wf_id, limit=1) == [newer]
        assert await _stuck_ids(api, workflowIdentifiers=wf_id, limit=1, offset=1) == [older]
        assert await _stuck_ids(api, workflowIdentifiers=wf_id, offset=2) == []
        assert await _stuck_ids(api, workflowRunIdentifiers=f"{older},{healthy}") == [older]
        assert await _stuck_ids(api, workflowIdentifiers=wf_id, statuses="COMPLETED") == []
        assert await _stuck_ids(api, workflowIdentifiers=wf_id, statuses="CANCELLING") == []
        assert await _stuck_ids(api, workflowIdentifiers=wf_id, createdBy="nobody") == []
        # Without stuck=true the same runs are listed as usual.
        listed = await api.call("GET", "/v1/workflows/runs", params={"workflowIdentifiers": wf_id})
        assert len(listed.json()["workflowRuns"]) == 4
    assert await _stuck_ids(api, workflowIdentifiers=wf_id) == []


async def test_stuck_is_for_admins_and_machines(api: Api, engine: EngineService) -> None:
    for who in ("member", "other"):
        response = await api.call("GET", "/v1/workflows/runs", who, params={"stuck": "true"})
        assert response.status_code == 403
        assert response.json() == {
            "ok": False, "error": "forbidden",
            "message": f"{who}@example.com may not list stuck runs (Admins and machines may)",
        }  # fmt: skip
        plain = await api.call("GET", "/v1/workflows/runs", who, params={"stuck": "false"})
        assert plain.status_code == 200
    for who in ("admin", "machine"):
        await _stuck_ids(api, who, limit=1)
    bad = await api.call("GET", "/v1/workflows/runs", params={"stuck": "perhaps"})
    assert bad.status_code == 422
    assert "query.stuck" in bad.json()["message"]


async def test_a_retry_backoff_and_a_cancelling_run_are_not_stuck(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    retrying = {
        "identifier": wf_id,
        "nodes": [trigger_node(), {"identifier": "work", "config": {
            "type": "KAFKA", "payload": {},
            "retry": {"maxAttempts": 2, "initialIntervalSeconds": 3600}}}],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}],
    }  # fmt: skip
    await api.define(retrying)
    run = await api.trigger(wf_id, {"name": "retry"})
    nr = node_run(run, "work")["identifier"]
    failed = {"status": "COMPLETED", "result": "FAILED", "output": {}}
    patched = await api.call("PATCH", f"/v1/workflows/nodes/runs/{nr}", "machine", json=failed)
    assert patched.status_code == 200
    backoff = await until(
        lambda: api.run(run["identifier"]),
        lambda r: [w["kind"] for w in r["waitingOn"]] == ["timer"],
    )
    assert backoff["status"] == "IN_PROGRESS"
    [wait] = backoff["waitingOn"]
    assert (wait["nodeRun"], wait["kind"]) == (nr, "timer")
    assert wait["deadline"] is not None

    calling = f"{wf_id}-call"
    await api.define({
        "identifier": calling,
        "nodes": [trigger_node(), {"identifier": "call", "config": {
            "type": "WEBHOOK", "url": "http://127.0.0.1:9/never", "synchronized": True}}],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "call"}],
    })  # fmt: skip
    cancelling = (await api.trigger(calling, {"name": "call"}))["identifier"]
    assert (await api.call("POST", f"/v1/workflows/runs/{cancelling}/cancel")).status_code == 200
    graceful = await until(lambda: api.run(cancelling), lambda r: r["status"] == "CANCELLING")
    assert [w["kind"] for w in graceful["waitingOn"]] == ["http"]

    for query in ({"workflowIdentifiers": [wf_id, calling]}, {"limit": 1000}):
        found = await _stuck_ids(api, **query)
        assert run["identifier"] not in found
        assert cancelling not in found
