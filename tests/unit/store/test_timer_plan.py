"""SetTimer and CancelTimer become Redis commands of the step that stores the state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from switchyard.engine.machine.effects import CancelTimer, Decision, SetTimer
from switchyard.engine.machine.state import RunState
from switchyard.engine.store import keys
from switchyard.engine.store.plan import plan_decision, timer_score
from switchyard.schemas import node_run_id, timer_id
from switchyard.schemas.settings import Settings
from switchyard.topics.registry import TopicRegistry

RUN_ID = "wfr_AbCdEfGh12345678"
NODE_RUN = node_run_id(RUN_ID, "work")
NOW = datetime(2026, 1, 28, 10, 0, 0, tzinfo=UTC)
REGISTRY = TopicRegistry.from_settings(Settings())
TAG = keys.tag_of(RUN_ID, REGISTRY.inbox.partitions)


def _state(step: int) -> RunState:
    return RunState(
        run_id=RUN_ID, workflow_identifier="wf", workflow_version=1, trigger="trigger",
        created_by="u", created_at=NOW, updated_at=NOW, step=step,
    )  # fmt: skip


def _timer_commands(*effects: SetTimer | CancelTimer) -> list[list[str]]:
    decision = Decision(state=_state(2), effects=effects)
    plan = plan_decision(_state(1), decision, offset=7, registry=REGISTRY, tag=TAG)
    timer_keys = {keys.timers(TAG), keys.timer_details(TAG), keys.TIMERS_WAKE}
    return [command for command in plan.commands if command[1] in timer_keys]


def test_set_timer_arms_it_with_its_details_and_wakes_the_service() -> None:
    tid = timer_id(RUN_ID, NODE_RUN, "node_timeout")
    due = NOW + timedelta(seconds=30)
    commands = _timer_commands(SetTimer(
        id="e1", timer_id=tid, run_id=RUN_ID, node_run_id=NODE_RUN, purpose="node_timeout",
        due_at=due,
    ))  # fmt: skip
    score = str(int(due.timestamp()) * 1000)
    assert commands[0] == ["ZADD", keys.timers(TAG), score, tid]
    assert commands[1][:3] == ["HSET", keys.timer_details(TAG), tid]
    assert orjson.loads(commands[1][3]) == {
        "runId": RUN_ID, "nodeRunId": NODE_RUN, "purpose": "node_timeout",
        "dueAt": "2026-01-28T10:00:30.000Z",
    }  # fmt: skip
    assert commands[2] == ["PUBLISH", keys.TIMERS_WAKE, score]
    assert len(commands) == 3


def test_a_run_timer_has_no_node_run() -> None:
    tid = timer_id(RUN_ID, None, "run_timeout")
    commands = _timer_commands(SetTimer(
        id="e1", timer_id=tid, run_id=RUN_ID, purpose="run_timeout", due_at=NOW,
    ))  # fmt: skip
    assert orjson.loads(commands[1][3])["nodeRunId"] is None
    assert commands[0] == ["ZADD", keys.timers(TAG), str(timer_score(NOW)), f"{RUN_ID}:run_timeout"]


def test_cancel_timer_disarms_it_without_waking_anyone() -> None:
    tid = timer_id(RUN_ID, NODE_RUN, "retry")
    assert _timer_commands(CancelTimer(id="e1", timer_id=tid, run_id=RUN_ID)) == [
        ["ZREM", keys.timers(TAG), tid],
        ["HDEL", keys.timer_details(TAG), tid],
    ]


def test_set_then_cancel_in_one_step_keep_their_order() -> None:
    tid = timer_id(RUN_ID, NODE_RUN, "node_timeout")
    commands = _timer_commands(
        SetTimer(id="e1", timer_id=tid, run_id=RUN_ID, node_run_id=NODE_RUN,
                 purpose="node_timeout", due_at=NOW),
        CancelTimer(id="e2", timer_id=tid, run_id=RUN_ID),
    )  # fmt: skip
    assert [c[0] for c in commands] == ["ZADD", "HSET", "PUBLISH", "ZREM", "HDEL"]


def test_a_timer_is_never_scored_before_it_is_due() -> None:
    # 0.123 s is not exact in binary: float seconds times 1000 would floor to 122.
    due = datetime(2026, 1, 28, 10, 0, 0, 123000, tzinfo=UTC)
    assert (
        timer_score(due) == int(datetime(2026, 1, 28, 10, 0, tzinfo=UTC).timestamp()) * 1000 + 123
    )
    assert timer_score(due + timedelta(microseconds=1)) == timer_score(due) + 1
    naive = due.replace(tzinfo=None)
    assert timer_score(naive) == timer_score(due)
