"""The public surface of switchyard.schemas: changing it is a decision, made here."""

from __future__ import annotations

import switchyard.schemas as schemas

EXPECTED = {
    "node_uid",
    "AiAgentConfig",
    "AiConfig",
    "AiRequest",
    "StatusLabel",
    "timer_id",
    "WaitKind",
    "Wait",
    "TimerPurpose",
    "ReusedNodeRun",
    "RetryPolicy",
    "RerunOf",
    "ActionConfig",
    "ConditionConfig",
    "Connection",
    "DecodeError",
    "Identifier",
    "InboxEvent",
    "InputProperty",
    "InputsInvalid",
    "IntegrationActionConfig",
    "KafkaConfig",
    "LogEntry",
    "LogLevel",
    "Node",
    "NodeConfig",
    "NodeRef",
    "NodeRun",
    "NodeRunContext",
    "NodeRunId",
    "NodeRunLog",
    "NodeRunRequest",
    "NodeRunResult",
    "NodeRunStatus",
    "NodeRunUpdated",
    "Outlet",
    "Problem",
    "ProblemsError",
    "RunCommand",
    "RunEvent",
    "RunEventKind",
    "RunId",
    "RunResult",
    "RunStatus",
    "RunTriggered",
    "RunVariables",
    "SchemaError",
    "SelfServeTriggerConfig",
    "TimerFired",
    "Timestamp",
    "TriggerPermissions",
    "UserInputs",
    "WebhookConfig",
    "WebhookRequest",
    "Workflow",
    "WorkflowInvalid",
    "WorkflowRef",
    "WorkflowRun",
    "decode",
    "decode_inbox",
    "encode",
    "format_timestamp",
    "graph_problems",
    "is_node_run_id",
    "is_run_id",
    "new_run_id",
    "node_run_id",
    "parse_workflow",
    "validate_inputs",
}


def test_all_is_the_pinned_surface() -> None:
    assert set(schemas.__all__) == EXPECTED
    assert len(schemas.__all__) == len(EXPECTED)


def test_every_name_in_all_exists() -> None:
    missing = [name for name in schemas.__all__ if not hasattr(schemas, name)]
    assert missing == []
