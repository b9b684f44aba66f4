"""The codec: round trips of every message, wire shapes, and decode errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import orjson
import pytest

from switchyard.schemas import (
    DecodeError,
    LogEntry,
    NodeRef,
    NodeRun,
    NodeRunContext,
    NodeRunLog,
    NodeRunRequest,
    NodeRunUpdated,
    RunCommand,
    RunEvent,
    RunTriggered,
    TimerFired,
    WebhookRequest,
    WorkflowRef,
    WorkflowRun,
    decode,
    decode_inbox,
    encode,
)

RUN = "wfr_AbCdEfGh12345678"
NODE_RUN = "wfnr_AbCdEfGh12345678"
AT = datetime(2026, 1, 28, 10, 0, 5, 123456, tzinfo=UTC)
CONTEXT = NodeRunContext(
    workflow_identifier="wf",
    workflow_run_id=RUN,
    node_run_id=NODE_RUN,
    node_identifier="notify",
    run_id=NODE_RUN,
)

INBOX = [
    RunTriggered(
        run_id=RUN,
        workflow_identifier="wf",
        workflow_version=2,
        node_identifier="trigger",
        inputs={"env": "prod"},
        created_by="alice@example.com",
        triggered_at=AT,
        idempotency_key="k-1",
    ),
    NodeRunUpdated(
        run_id=RUN,
        node_run_id=NODE_RUN,
        status="COMPLETED",
        result="FAILED",
        output={"a": [1, 2]},
        logs=[LogEntry(log_level="ERROR", log="boom", tags={"k": "v"})],
        links=["https://x"],
        external_run_id="ext-1",
        sent_at=AT,
    ),
    RunCommand(run_id=RUN, command="cancel", force=True, by="bob"),
    TimerFired(run_id=RUN, timer_id="t-1", node_run_id=NODE_RUN, fired_at=AT),
]


@pytest.mark.parametrize("event", INBOX, ids=lambda e: type(e).__name__)
def test_inbox_events_round_trip(event: Any) -> None:
    assert decode_inbox(encode(event)) == event


def test_wire_uses_camel_case_and_millisecond_z_timestamps() -> None:
    data = orjson.loads(encode(INBOX[0]))
    assert data["type"] == "RunTriggered"
    assert data["runId"] == RUN
    assert data["triggeredAt"] == "2026-01-28T10:00:05.123Z"
    assert data["idempotencyKey"] == "k-1"


def test_node_run_request_is_exactly_payload_and_context() -> None:
    request = NodeRunRequest(payload={"x": 1}, context=CONTEXT)
    assert orjson.loads(encode(request)) == {
        "payload": {"x": 1},
        "context": {
            "workflowIdentifier": "wf",
            "workflowRunId": RUN,
            "nodeRunId": NODE_RUN,
            "nodeIdentifier": "notify",
            "runId": NODE_RUN,
        },
    }
    assert decode(encode(request), NodeRunRequest) == request
    assert request.run_id == RUN


def test_context_run_id_must_be_the_node_run() -> None:
    with pytest.raises(ValueError, match="runId must equal nodeRunId"):
        NodeRunContext(
            workflow_identifier="wf",
            workflow_run_id=RUN,
            node_run_id=NODE_RUN,
            node_identifier="n",
            run_id="wfnr_0000000000000000",
        )


def test_webhook_request_and_run_event_round_trip() -> None:
    webhook = WebhookRequest(
        url="https://x", method="PUT", headers={"a": "b"}, body=[1], context=CONTEXT
    )
    assert decode(encode(webhook), WebhookRequest) == webhook
    event = RunEvent(run_id=RUN, seq=3, kind="nodeRun.completed", status="COMPLETED", at=AT)
    assert decode(encode(event), RunEvent) == event


def test_workflow_run_has_the_seed_shape() -> None:
    node_run = NodeRun(
        identifier=NODE_RUN,
        node=NodeRef(identifier="notify"),
        node_title="Notify",
        node_config_type="KAFKA",
        status="IN_PROGRESS",
        node_run_logs=[NodeRunLog(log_level="INFO", log="hi", created_at=AT)],
        created_at=AT,
        updated_at=AT,
    )
    run = WorkflowRun(
        identifier=RUN,
        status="IN_PROGRESS",
        node_runs=[node_run],
        workflow=WorkflowRef(identifier="wf", version=2),
        workflow_version_id=2,
        created_at=AT,
        updated_at=AT,
        created_by="alice",
    )
    data = orjson.loads(encode(run))
    assert set(data) == {
        "identifier", "status", "result", "nodeRuns", "variables", "workflow",
        "workflowVersionId", "createdAt", "updatedAt", "completedAt", "createdBy",
        "rerunOf", "waitingOn", "statusLabel",
    }  # fmt: skip
    assert data["result"] is None
    assert data["completedAt"] is None
    assert data["variables"] == {"outputs": {}}
    assert set(data["nodeRuns"][0]) == {
        "identifier", "node", "nodeTitle", "nodeIcon", "nodeConfigType", "status", "result",
        "output", "nodeRunLogs", "links", "externalRunId", "createdAt", "updatedAt",
        "attempt", "retryOf", "reusedFrom", "statusLabel",
        "completedAt",
    }  # fmt: skip
    assert data["nodeRuns"][0]["nodeRunLogs"] == [
        {"logLevel": "INFO", "log": "hi", "tags": {}, "createdAt": "2026-01-28T10:00:05.123Z"}
    ]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1]", "must be a JSON object (got list)"),
        (b'{"runId": "wfr_AbCdEfGh12345678"}', "type: is required"),
        (b'{"type": "Explode"}', "type: Explode is not supported"),
        (
            b'{"type": "RunCommand", "runId": "wfr_x", "command": "cancel", "by": "b"}',
            "runId: String should match pattern",
        ),
        (
            b'{"type": "RunCommand", "runId": "wfr_AbCdEfGh12345678", "command": "restart",'
            b' "by": "b"}',
            "command: Input should be 'cancel' or 'rerun' (got 'restart')",
        ),
        (
            b'{"type": "RunCommand", "runId": "wfr_AbCdEfGh12345678", "command": "cancel",'
            b' "by": "b", "fromNode": "deploy"}',
            "newRunId, inputs, fromNode and version are for command: rerun",
        ),
        (
            b'{"type": "RunCommand", "runId": "wfr_AbCdEfGh12345678", "command": "cancel",'
            b' "by": "b", "extra": 1}',
            "extra: is not a known field",
        ),
        (
            b'{"type": "NodeRunUpdated", "runId": "wfr_AbCdEfGh12345678", "nodeRunId":'
            b' "wfnr_AbCdEfGh12345678", "status": "COMPLETED", "sentAt": "2026-01-28T10:00:00Z"}',
            "result is required when status is COMPLETED",
        ),
    ],
)
def test_decode_errors_keep_the_raw_bytes_and_name_the_field(raw: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_inbox(raw)
    assert caught.value.raw == raw
    assert reason in caught.value.reason
    assert caught.value.retriable is False


def test_events_are_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        cast(Any, INBOX[2]).force = False
