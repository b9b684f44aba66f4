"""Replays every event history under histories/ through decide() (DESIGN: replay tests).

A history is ``{description, workflow, events, expect}``. Events are inbox JSON as on
the wire; the runner fills ``runId`` and the event time (one second apart) when left
out, and turns ``"nodeRunId": "@<node>"`` (``"@<node>#<attempt>"``) into that node's
deterministic node-run id, and ``"timerId": "@<node>[#<attempt>]:<purpose>"`` (or
``"@run:run_timeout"``) into that timer's id.
``expect.rejections`` has one entry per event (null: applied); ``expect.run`` is the
final run (null: none exists), compared on status, result, outputs, node runs in
order as ``[node, status, result]`` and, when given, ``waitingOn`` (nodes).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from switchyard.schemas import TimerPurpose, decode_inbox, node_run_id, parse_workflow, timer_id

from .conftest import RUN_ID, START, Harness

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
TIME_FIELDS = {"RunTriggered": "triggeredAt", "NodeRunUpdated": "sentAt", "TimerFired": "firedAt"}


def wire_event(raw: dict[str, Any], index: int) -> bytes:
    event = {"runId": RUN_ID, **raw}
    time_field = TIME_FIELDS.get(event["type"])
    if time_field is not None:
        at = START + timedelta(seconds=index)
        event.setdefault(time_field, at.isoformat().replace("+00:00", "Z"))
    node_run = event.get("nodeRunId")
    if isinstance(node_run, str) and node_run.startswith("@"):
        event["nodeRunId"] = _node_run(node_run[1:])
    timer = event.get("timerId")
    if isinstance(timer, str) and timer.startswith("@"):
        owner, _, purpose = timer[1:].partition(":")
        node_run = None if owner == "run" else _node_run(owner)
        event["timerId"] = timer_id(RUN_ID, node_run, cast(TimerPurpose, purpose))
    return orjson.dumps(event)


def _node_run(ref: str) -> str:
    node, _, attempt = ref.partition("#")
    return node_run_id(RUN_ID, node, int(attempt or 1))


def summary(harness: Harness) -> dict[str, Any] | None:
    if harness.state is None:
        return None
    run = harness.state
    return {
        "status": run.status,
        "result": run.result,
        "outputs": run.outputs,
        "nodeRuns": [[nr.node, nr.status, nr.result] for nr in run.node_runs],
        "waitingOn": [nr.node for nr in run.node_runs if nr.in_flight or nr.retry_pending],
    }


def test_there_are_histories_including_rejected_ones() -> None:
    assert len(HISTORIES) >= 10
    rejected = [p for p in HISTORIES if "rejected" in p.name]
    assert len(rejected) >= 3


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
def test_history(path: Path) -> None:
    history = orjson.loads(path.read_bytes())
    harness = Harness(parse_workflow(history["workflow"]), history.get("secrets"))
    codes = []
    for index, raw in enumerate(history["events"]):
        decision = harness.send(decode_inbox(wire_event(raw, index)))
        codes.append(decision.rejection.code if decision.rejection else None)
    expect = history["expect"]
    assert codes == expect["rejections"], history["description"]
    got = summary(harness)
    if expect["run"] is None or got is None:
        assert got == expect["run"]
        return
    wanted = dict(expect["run"])
    wanted.setdefault("waitingOn", [])
    assert got == wanted, history["description"]
