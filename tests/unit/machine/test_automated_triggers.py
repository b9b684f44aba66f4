"""Runs started by an EVENT_TRIGGER or a SCHEDULE_TRIGGER, and UPSERT_ENTITY nodes,
in the pure machine."""

from __future__ import annotations

import itertools
from typing import Any

from switchyard.schemas import parse_workflow

from .conftest import Harness

PAYLOAD = {
    "diff": {"before": None, "after": {"identifier": "svc-a", "properties": {"tier": "gold"}}},
    "action": "CREATE",
    "context": {"blueprintIdentifier": "service", "entityIdentifier": "svc-a"},
}


def automated(trigger: dict[str, Any], *then: dict[str, Any]) -> Harness:
    nodes = [{"identifier": "trigger", "config": trigger}, *then]
    edges = [
        {"sourceIdentifier": a["identifier"], "targetIdentifier": b["identifier"]}
        for a, b in itertools.pairwise(nodes)
    ]
    return Harness(parse_workflow({"identifier": "wf", "version": 1, "nodes": nodes,
                                   "connections": edges}))  # fmt: skip


EVENT = {
    "type": "EVENT_TRIGGER",
    "event": {"type": "ENTITY_CREATED", "blueprintIdentifier": "service"},
}
UPSERT = {
    "identifier": "write",
    "config": {
        "type": "UPSERT_ENTITY",
        "blueprintIdentifier": "{{ .outputs.trigger.context.blueprintIdentifier }}",
        "mapping": {
            "identifier": "{{ .outputs.trigger.context.entityIdentifier }}-copy",
            "properties": {"tier": "{{ .outputs.trigger.diff.after.properties.tier }}"},
        },
    },
}


def test_an_event_triggers_output_is_the_payload_and_the_depth_is_kept() -> None:
    h = automated(EVENT, UPSERT)
    h.trigger(payload=PAYLOAD, depth=3, node_identifier="trigger")
    trigger = h.node_run("trigger")
    assert (trigger.status, trigger.result) == ("COMPLETED", "SUCCESS")
    assert trigger.output == PAYLOAD
    assert h.run.outputs["trigger"] == PAYLOAD
    assert h.run.depth == 3


def test_upsert_entity_hands_the_rendered_mapping_to_the_entity_executor() -> None:
    h = automated(EVENT, UPSERT)
    decision = h.trigger(payload=PAYLOAD, depth=2)
    [effect] = h.effects("PublishEntityRequest", decision)
    request = effect.request
    assert request.blueprint_identifier == "service"
    assert request.entity == {
        "identifier": "svc-a-copy", "properties": {"tier": "gold"}, "relations": {},
    }  # fmt: skip
    assert request.depth == 2
    assert request.context.node_run_id == h.node_run("write").id
    assert h.node_run("write").in_flight
    h.complete("write", output={"response": {"data": {"identifier": "svc-a-copy"}}})
    assert h.run.result == "SUCCESS"
    assert h.run.outputs["write"] == {"response": {"data": {"identifier": "svc-a-copy"}}}


def test_a_mapping_that_renders_properties_to_a_non_object_fails_the_node() -> None:
    bad = {"identifier": "write", "config": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "svc",
           "mapping": {"properties": "{{ .outputs.trigger.action }}"}}}  # fmt: skip
    h = automated(EVENT, bad)
    h.trigger(payload=PAYLOAD)
    write = h.node_run("write")
    assert (write.status, write.result) == ("COMPLETED", "FAILED")
    assert write.output["error"]["message"] == (
        'mapping.properties: must render to an object (got "CREATE")'
    )
    assert h.effects("PublishEntityRequest") == []


def test_a_schedule_trigger_starts_with_its_tick() -> None:
    h = automated({"type": "SCHEDULE_TRIGGER", "cron": "*/5 * * * *"},
                  {"identifier": "work", "config": {"type": "KAFKA"}})  # fmt: skip
    tick = {"scheduledAt": "2026-12-02T09:05:00.000Z", "cron": "*/5 * * * *"}
    h.trigger(payload=tick)
    assert h.node_run("trigger").output == tick
    assert h.node_run("work").in_flight


def test_a_self_service_start_is_refused_for_an_automated_trigger_and_vice_versa() -> None:
    h = automated(EVENT, UPSERT)
    refused = h.trigger()  # no payload: a person's trigger, and this workflow has none
    assert refused.rejection is not None
    assert refused.rejection.code == "no_trigger"
    assert refused.rejection.reason == "nodeIdentifier is required: wf has triggers none"
    named = automated(EVENT, UPSERT).trigger(node_identifier="trigger")
    assert named.rejection is not None
    assert named.rejection.reason == "'trigger' is not a self-service trigger of wf"


def test_an_unpublished_event_trigger_starts_nothing() -> None:
    h = automated({**EVENT, "published": False}, UPSERT)
    refused = h.trigger(payload=PAYLOAD)
    assert refused.rejection is not None
    assert refused.rejection.code == "trigger_unpublished"
