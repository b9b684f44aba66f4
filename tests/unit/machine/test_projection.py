"""to_workflow_run, effect ids, the outbox adapter, and replay determinism."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from switchyard.engine.machine import EFFECTS, to_workflow_run
from switchyard.schemas import NodeRunLog, encode, node_run_id

from .conftest import RUN_ID, Harness, chain, trigger_node


def scenario() -> Harness:
    hook = {
        "identifier": "deploy",
        "title": "Deploy",
        "icon": "Deployment",
        "config": {"type": "WEBHOOK", "url": "https://h.test", "synchronized": False},
    }
    harness = Harness(chain(trigger_node(), hook))
    harness.trigger()
    harness.update("deploy", logs=[{"logLevel": "INFO", "log": "half way"}], externalRunId="e1")
    harness.complete("deploy", output={"id": 5})
    return harness


def logs_of(harness: Harness) -> dict[str, list[NodeRunLog]]:
    logs: dict[str, list[NodeRunLog]] = defaultdict(list)
    for decision in harness.decisions:
        for effect in decision.effects:
            if effect.kind == "AppendLogs":
                logs[effect.node_run_id].extend(effect.entries)
    return logs


def test_projection_has_the_api_shape() -> None:
    harness = scenario()
    run = orjson.loads(encode(to_workflow_run(harness.run, logs_of(harness), harness.workflow)))
    assert run["identifier"] == RUN_ID
    assert (run["status"], run["result"]) == ("COMPLETED", "SUCCESS")
    assert run["workflow"] == {"identifier": "wf", "version": 3}
    assert run["workflowVersionId"] == 3
    assert run["createdBy"] == "alice@example.com"
    assert run["createdAt"] == "2026-01-28T10:00:00.000Z"
    assert run["completedAt"] == "2026-01-28T10:00:02.000Z"
    assert run["variables"] == {"outputs": {"trigger": {}, "deploy": {"id": 5}}}
    deploy = run["nodeRuns"][1]
    assert deploy["identifier"] == node_run_id(RUN_ID, "deploy")
    assert deploy["node"] == {"identifier": "deploy"}
    assert (deploy["nodeTitle"], deploy["nodeIcon"], deploy["nodeConfigType"]) == (
        "Deploy",
        "Deployment",
        "WEBHOOK",
    )
    assert deploy["externalRunId"] == "e1"
    assert [log["log"] for log in deploy["nodeRunLogs"]][-1] == "half way"
    assert run["nodeRuns"][0]["nodeConfigType"] == "SELF_SERVE_TRIGGER"


def test_replaying_the_same_events_gives_the_same_states_and_effects() -> None:
    first, second = scenario(), scenario()
    assert first.run == second.run
    assert [d.effects for d in first.decisions] == [d.effects for d in second.decisions]


def test_effect_ids_are_unique_and_the_outbox_round_trips() -> None:
    harness = scenario()
    effects = [effect for decision in harness.decisions for effect in decision.effects]
    ids = [effect.id for effect in effects]
    assert len(ids) == len(set(ids))
    assert EFFECTS.validate_json(EFFECTS.dump_json(effects)) == effects


def test_run_event_seq_counts_from_one_without_gaps() -> None:
    harness = scenario()
    seqs: list[Any] = [
        effect.event.seq
        for decision in harness.decisions
        for effect in decision.effects
        if effect.kind == "EmitRunEvent"
    ]
    assert seqs == list(range(1, len(seqs) + 1))
    assert harness.run.seq == seqs[-1]
