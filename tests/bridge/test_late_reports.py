"""A late report for a node run the engine ended itself (timed out, force-cancelled)
is refused with 409 on every path, like any report for a COMPLETED node run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from switchyard.engine.service import EngineService
from switchyard.schemas import TimerFired, encode, timer_id
from tests.bridge.support import Api, node_run, trigger_node
from tests.helpers import until

DONE = {"status": "COMPLETED", "result": "SUCCESS", "output": {"late": True}}


def _timed_workflow(identifier: str) -> dict[str, Any]:
    return {
        "identifier": identifier,
        "nodes": [trigger_node(), {"identifier": "work", "config": {
            "type": "KAFKA", "payload": {}, "timeoutSeconds": 60}}],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}],
    }  # fmt: skip


async def _late_reports_are_409(api: Api, run_id: str, nr: str) -> list[str]:
    messages = []
    for path in (f"/v1/workflows/nodes/runs/{nr}", f"/v1/workflows/runs/{run_id}/nodes/{nr}"):
        for body in (DONE, {"status": "IN_PROGRESS", "logs": [{"logLevel": "INFO", "log": "x"}]}):
            response = await api.call("PATCH", path, "machine", json=body)
            assert response.status_code == 409, (path, body, response.text)
            assert response.json()["error"] == "conflict"
            messages.append(response.json()["message"])
    logs = {"logs": [{"level": "INFO", "message": "too late"}]}
    response = await api.call("POST", f"/v1/workflows/nodes/runs/{nr}/logs", "machine", json=logs)
    assert response.status_code == 409
    return messages


async def test_a_report_after_the_engine_timed_the_node_out_is_409(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    await api.define(_timed_workflow(wf_id))
    run = await api.trigger(wf_id, {"name": "ada"})
    nr = node_run(run, "work")["identifier"]
    [wait] = run["waitingOn"]
    assert (wait["nodeRun"], wait["kind"]) == (nr, "worker")
    assert wait["deadline"] is not None
    # What the timer service sends when the deadline comes.
    fired = TimerFired(
        run_id=run["identifier"], timer_id=timer_id(run["identifier"], nr, "node_timeout"),
        node_run_id=nr, purpose="node_timeout", fired_at=datetime.now(UTC),
    )  # fmt: skip
    await api.ctx.producer.send_and_wait(
        api.ctx.registry.inbox.name, run["identifier"], encode(fired)
    )
    failed = await until(lambda: api.run(run["identifier"]), lambda r: r["status"] == "COMPLETED")
    work = node_run(failed, "work")
    assert (failed["result"], work["result"]) == ("FAILED", "FAILED")
    assert work["output"]["error"]["message"] == "timed out after 60 s"
    messages = await _late_reports_are_409(api, run["identifier"], nr)
    assert messages[0] == f"node run {nr} is COMPLETED (FAILED: it timed out); it is frozen"
    after = await api.run(run["identifier"])
    assert node_run(after, "work")["output"] == work["output"]


async def test_a_report_after_a_forced_cancel_is_409(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    await api.define(_timed_workflow(wf_id))
    run = await api.trigger(wf_id, {"name": "ada"})
    nr = node_run(run, "work")["identifier"]
    cancel = await api.call("POST", f"/v1/workflows/runs/{run['identifier']}/cancel?force=true")
    assert cancel.status_code == 200
    await until(lambda: api.run(run["identifier"]), lambda r: r["status"] == "COMPLETED")
    messages = await _late_reports_are_409(api, run["identifier"], nr)
    assert messages[0] == f"node run {nr} is COMPLETED (CANCELLED); it is frozen"
