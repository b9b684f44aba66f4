"""Retention, pure parts: the apply step indexes a run by finish time exactly once (the
step that completes it), and a finished run's prune plan names every key it holds."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from msgspec.structs import replace
from redis.crc import key_slot

from switchyard.engine.machine.effects import Decision
from switchyard.engine.machine.state import NodeRunState, RunState, dump_state
from switchyard.engine.store import keys
from switchyard.engine.store.plan import plan_decision
from switchyard.engine.store.prune import prune_plan, score_ms
from switchyard.schemas import node_run_id
from switchyard.schemas.settings import Settings
from switchyard.topics.registry import TopicRegistry

RUN_ID = "wfr_AbCdEfGh12345678"
CREATED = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
FINISHED = CREATED + timedelta(minutes=3, milliseconds=7)
REGISTRY = TopicRegistry.from_settings(Settings())
TAG = keys.tag_of(RUN_ID, REGISTRY.inbox.partitions)


def _node_run(node: str, **extra: object) -> NodeRunState:
    fields: dict[str, Any] = {"status": "COMPLETED", "result": "SUCCESS", **extra}
    return NodeRunState(
        id=node_run_id(RUN_ID, node),
        node=node,
        created_at=CREATED,
        updated_at=FINISHED,
        **fields,
    )


def _running() -> RunState:
    return RunState(
        run_id=RUN_ID, workflow_identifier="wf-a", workflow_version=3, trigger="trigger",
        created_by="ann@example.com", created_at=CREATED, updated_at=CREATED,
        node_runs=[
            _node_run("trigger"),
            _node_run("act", status="IN_PROGRESS", result=None, installation_id="inst-1",
                      external_run_id="ext-9"),
        ],
    )  # fmt: skip


def _finished() -> RunState:
    state = _running()
    act = replace(state.node_runs[1], status="COMPLETED", result="FAILED")
    return replace(
        state, status="COMPLETED", result="FAILED", completed_at=FINISHED,
        updated_at=FINISHED, node_runs=[state.node_runs[0], act],
    )  # fmt: skip


def _finished_index(commands: list[list[str]]) -> list[list[str]]:
    return [c for c in commands if keys.runs_finished(TAG) in c]


def test_the_step_that_completes_a_run_indexes_it_by_its_finish_time_and_no_other_does() -> None:
    running, finished = _running(), _finished()
    created = plan_decision(None, Decision(state=running), offset=1, registry=REGISTRY, tag=TAG)
    completing = plan_decision(
        running, Decision(state=finished), offset=2, registry=REGISTRY, tag=TAG
    )
    later = replace(finished, step=9, updated_at=FINISHED + timedelta(days=1))
    after = plan_decision(finished, Decision(state=later), offset=3, registry=REGISTRY, tag=TAG)

    assert _finished_index(created.commands) == []
    assert _finished_index(completing.commands) == [
        ["ZADD", keys.runs_finished(TAG), str(score_ms(FINISHED)), RUN_ID]
    ]
    assert score_ms(FINISHED) == int(FINISHED.timestamp() * 1000)
    assert _finished_index(after.commands) == []  # a re-run command on it: not re-indexed


def test_a_finished_runs_plan_names_all_it_holds_and_lays_them_out_for_the_script() -> None:
    state = _finished()
    raw = dump_state(state)
    plan = prune_plan(state, raw, [("service", "svc-a")], TAG)
    trigger, act = (nr.id for nr in state.node_runs)

    assert plan.digest == hashlib.sha1(raw).hexdigest()
    assert set(plan.deleted) == {
        keys.outbox(RUN_ID, TAG), keys.run_events(RUN_ID, TAG), keys.claim(act, TAG),
    }  # fmt: skip
    # Keys outside the partition's slot go in a DEL of their own, after the script.
    assert set(plan.elsewhere) == {
        *(keys.entity_node_run(n) for n in (trigger, act)),
        *(keys.answered(n) for n in (trigger, act)),
    }
    assert set(plan.indexes) == {
        keys.runs_all(TAG), keys.runs_of_workflow("wf-a", TAG), keys.runs_of_version(3, TAG),
        keys.runs_by("ann@example.com", TAG), keys.runs_of_entity("service", "svc-a", TAG),
        *(keys.runs_with_status(s, TAG) for s in ("IN_PROGRESS", "CANCELLING", "COMPLETED")),
        *(keys.runs_with_result(r, TAG) for r in ("SUCCESS", "FAILED", "CANCELLED")),
    }  # fmt: skip
    assert plan.buckets == [(keys.node_runs_bucket(trigger, TAG), trigger),
                            (keys.node_runs_bucket(act, TAG), act)]  # fmt: skip
    assert plan.claims == [(keys.claims("inst-1", TAG), act)]
    assert plan.external == [(keys.external_run("ext-9", TAG), act)]

    script_keys, args = plan.keys_and_args()
    # Every key the script touches is in the run's partition's slot.
    assert {key_slot(k.encode()) for k in script_keys} == {key_slot(TAG.encode())}
    fixed = [keys.run(RUN_ID, TAG), keys.runs_finished(TAG), keys.logs(RUN_ID, TAG),
             keys.outbox_pending(TAG)]  # fmt: skip
    assert script_keys[:4] == fixed
    assert args[:2] == [RUN_ID, plan.digest]
    counts = [int(n) for n in args[2:7]]
    assert counts == [len(plan.deleted), len(plan.indexes), 2, 1, 1]
    assert len(script_keys) == 4 + sum(counts)
    assert args[7:] == [trigger, act, act, act]  # one member per key of the last three groups
