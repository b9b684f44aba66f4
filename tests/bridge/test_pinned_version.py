"""A run keeps the graph of the workflow version it started on: a PUT while it runs
makes a new version for new runs only, over the real engine, Kafka and Redis."""

from __future__ import annotations

from typing import Any

import pytest

from switchyard.engine.service import EngineService
from tests.bridge.support import Api, node_run, trigger_node
from tests.helpers import until

pytestmark = pytest.mark.integration

DONE = {"status": "COMPLETED", "result": "SUCCESS", "output": {"ok": 1}}


def _version(identifier: str, after: str, title: str) -> dict[str, Any]:
    """trigger → work (KAFKA, titled ``title``) → ``after`` (KAFKA)."""
    return {
        "identifier": identifier, "allowAnyoneToViewRuns": True,
        "nodes": [
            trigger_node(),
            {"identifier": "work", "title": title, "config": {"type": "KAFKA", "payload": {}}},
            {"identifier": after, "title": after, "config": {"type": "KAFKA", "payload": {}}},
        ],
        "connections": [
            {"sourceIdentifier": "trigger", "targetIdentifier": "work"},
            {"sourceIdentifier": "work", "targetIdentifier": after},
        ],
    }  # fmt: skip


async def _waiting_on(api: Api, run_id: str, node: str) -> dict[str, Any]:
    """The run once ``node`` has a node run in progress."""
    return await until(
        lambda: api.run(run_id),
        lambda r: any(
            nr["node"]["identifier"] == node and nr["status"] == "IN_PROGRESS"
            for nr in r["nodeRuns"]
        ),
    )


async def _complete(api: Api, run: dict[str, Any], node: str) -> None:
    nr = node_run(run, node)["identifier"]
    response = await api.call("PATCH", f"/v1/workflows/nodes/runs/{nr}", "machine", json=DONE)
    assert response.status_code == 200, response.text


def _nodes(run: dict[str, Any]) -> list[str]:
    return [nr["node"]["identifier"] for nr in run["nodeRuns"]]


async def test_a_run_finishes_on_its_version_after_a_put(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    await api.define(_version(wf_id, "after_v1", "Work, v1"))
    old = (await api.trigger(wf_id, {"name": "ada"}))["identifier"]
    started = await _waiting_on(api, old, "work")
    assert node_run(started, "work")["nodeTitle"] == "Work, v1"

    # v2 while the run waits on "work": another title and another next node.
    v2 = _version(wf_id, "after_v2", "Work, v2")
    put = await api.call("PUT", f"/v1/workflows/{wf_id}", json=v2)
    assert put.status_code == 200, put.text
    assert put.json()["workflow"]["version"] == 2
    new = (await api.trigger(wf_id, {"name": "bob"}))["identifier"]
    on_v2 = await _waiting_on(api, new, "work")
    assert node_run(on_v2, "work")["nodeTitle"] == "Work, v2"  # the PUT took effect

    await _complete(api, started, "work")
    next_step = await _waiting_on(api, old, "after_v1")
    await _complete(api, next_step, "after_v1")
    done = await until(lambda: api.run(old), lambda r: r["status"] == "COMPLETED")
    assert done["result"] == "SUCCESS"
    assert done["workflow"]["version"] == 1
    assert _nodes(done) == ["trigger", "work", "after_v1"]
    assert node_run(done, "work")["nodeTitle"] == "Work, v1"

    await _complete(api, on_v2, "work")
    moved = await _waiting_on(api, new, "after_v2")
    assert moved["workflow"]["version"] == 2
    assert _nodes(moved) == ["trigger", "work", "after_v2"]
