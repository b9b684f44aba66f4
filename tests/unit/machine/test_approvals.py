"""INPUT nodes (approvals): waiting, answers counted once per responder, the first
outlet to reach its ``numOfResponders`` taken; rejections; notifications; timeouts."""

from __future__ import annotations

from typing import Any

from switchyard.engine.machine import to_workflow_run
from switchyard.engine.machine.options import MachineOptions
from switchyard.schemas import (
    InputResponded,
    LogEntry,
    NodeRunUpdated,
    StatusLabel,
    Workflow,
    node_run_id,
    parse_workflow,
)

from .conftest import RUN_ID, SECRETS, START, Harness, trigger_node

NR = node_run_id(RUN_ID, "approval")


def approval(**config: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "INPUT",
        "description": "Deploy {{ .outputs.trigger.service }}?",
        "userInputs": {
            "properties": {"reason": {"type": "string", "minLength": 2}},
            "buttons": [
                {"identifier": "approve", "label": "Approve"},
                {"identifier": "decline", "label": "Decline", "variant": "DANGER"},
            ],
        },
        "outlets": [
            {
                "identifier": "approve",
                "title": "Approved",
                "numOfResponders": 2,
                "statusLabel": {"text": "approved", "variant": "success"},
                "workflowStatusLabel": {"text": "deploy approved"},
            },
            {"identifier": "decline", "title": "Declined", "numOfResponders": 1},
        ],
        "responders": {"users": ["alice@example.com", "bob@example.com"], "roles": ["Admin"]},
    }
    return {"identifier": "approval", "title": "Approve", "config": {**base, **config}}


def workflow(**config: Any) -> Workflow:
    definition = {
            "identifier": "wf",
            "version": 2,
            "nodes": [
                trigger_node(service={"type": "string"}),
                approval(**config),
                {"identifier": "deploy", "config": {"type": "KAFKA"}},
                {"identifier": "rollback", "config": {"type": "KAFKA"}},
            ],
            "connections": [
                {"sourceIdentifier": "trigger", "targetIdentifier": "approval"},
                {
                    "sourceIdentifier": "approval",
                    "sourceOutletIdentifier": "approve",
                    "targetIdentifier": "deploy",
                },
                {
                    "sourceIdentifier": "approval",
                    "sourceOutletIdentifier": "decline",
                    "targetIdentifier": "rollback",
                },
            ],
    }  # fmt: skip
    return parse_workflow(definition)


def started(**config: Any) -> Harness:
    h = Harness(workflow(**config))
    h.trigger({"service": "api"})
    return h


def answer(h: Harness, by: str, button: str = "approve", **inputs: Any) -> Any:
    return h.send(
        InputResponded(
            run_id=RUN_ID, node_run_id=NR, button_identifier=button,
            inputs=inputs or {"reason": "ok"}, submitted_by=by, submitted_at=START,
        )
    )  # fmt: skip


def test_the_node_waits_with_its_rendered_form_as_output() -> None:
    h = started()
    node_run = h.node_run("approval")
    assert node_run.status == "IN_PROGRESS"
    assert node_run.output["description"] == "Deploy api?"
    assert [b["identifier"] for b in node_run.output["userInputs"]["buttons"]] == [
        "approve",
        "decline",
    ]
    assert node_run.output["responders"] == {
        "users": ["alice@example.com", "bob@example.com"], "roles": ["Admin"], "teams": [],
    }  # fmt: skip
    assert node_run.output["responses"] == []
    run = to_workflow_run(h.run, {}, h.workflow)
    assert [(w.node_run, w.kind, w.deadline) for w in run.waiting_on] == [(NR, "approval", None)]


def test_two_approvals_complete_it_along_the_approve_outlet() -> None:
    h = started()
    first = answer(h, "alice@example.com")
    assert first.accepted
    assert h.node_run("approval").status == "IN_PROGRESS"  # 1 of 2
    assert len(h.node_run("approval").output["responses"]) == 1
    answer(h, "bob@example.com", reason="fine")
    done = h.node_run("approval")
    assert (done.status, done.result) == ("COMPLETED", "SUCCESS")
    assert done.output == {
        "selectedOutlet": {"identifier": "approve", "title": "Approved"},
        "responses": [
            {"buttonIdentifier": "approve", "inputs": {"reason": "ok"},
             "submitterInfo": {"submittedBy": "alice@example.com",
                               "submittedAt": "2026-01-28T10:00:00.000Z"}},
            {"buttonIdentifier": "approve", "inputs": {"reason": "fine"},
             "submitterInfo": {"submittedBy": "bob@example.com",
                               "submittedAt": "2026-01-28T10:00:00.000Z"}},
        ],
    }  # fmt: skip
    assert h.run.outputs["approval"] == done.output
    assert [nr.node for nr in h.run.node_runs] == ["trigger", "approval", "deploy"]
    assert done.status_label == StatusLabel(text="approved", variant="success")
    assert h.run.status_label == StatusLabel(text="deploy approved")
    assert "rollback" in h.run.dead


def test_the_first_outlet_to_reach_its_count_wins() -> None:
    h = started()
    answer(h, "alice@example.com")
    answer(h, "bob@example.com", "decline")  # decline needs 1: it wins
    done = h.node_run("approval")
    assert done.output["selectedOutlet"] == {"identifier": "decline", "title": "Declined"}
    assert [nr.node for nr in h.run.node_runs][-1] == "rollback"
    assert len(done.output["responses"]) == 2


def test_outlets_are_checked_in_declared_order() -> None:
    # Both outlets need one answer; an answer counts for its own button only.
    h = started(outlets=[
        {"identifier": "decline", "title": "No", "numOfResponders": 1},
        {"identifier": "approve", "title": "Yes", "numOfResponders": 1},
    ])  # fmt: skip
    answer(h, "alice@example.com", "approve")
    assert h.node_run("approval").output["selectedOutlet"]["identifier"] == "approve"


def test_a_responder_answers_once() -> None:
    h = started()
    answer(h, "alice@example.com")
    again = answer(h, "alice@example.com", reason="changed my mind")
    assert again.rejection is not None
    assert again.rejection.code == "already_responded"
    redelivered = answer(h, "alice@example.com")  # the very same answer: at-least-once
    assert redelivered.rejection is not None
    assert redelivered.rejection.code == "duplicate_response"
    assert len(h.node_run("approval").output["responses"]) == 1


def test_a_redelivered_answer_after_completion_is_a_duplicate() -> None:
    h = started()
    answer(h, "alice@example.com")
    answer(h, "bob@example.com")
    again = answer(h, "bob@example.com")
    assert again.rejection is not None
    assert again.rejection.code == "duplicate_response"


def test_an_answer_after_the_node_completed_is_closed() -> None:
    h = started()
    answer(h, "alice@example.com", "decline")
    late = answer(h, "bob@example.com")
    assert late.rejection is not None
    assert late.rejection.code == "input_closed"


def test_unknown_buttons_and_bad_inputs_are_refused() -> None:
    h = started()
    unknown = answer(h, "alice@example.com", "maybe")
    assert unknown.rejection is not None
    assert unknown.rejection.code == "unknown_button"
    assert "approve, decline" in unknown.rejection.reason
    bad = answer(h, "alice@example.com", reason="x")
    assert bad.rejection is not None
    assert bad.rejection.code == "invalid_inputs"
    assert bad.rejection.reason.startswith("inputs.reason:")
    extra = answer(h, "alice@example.com", color="red")
    assert extra.rejection is not None
    assert "is not an input of this form" in extra.rejection.reason
    assert h.node_run("approval").output["responses"] == []


def test_an_answer_to_a_node_run_that_is_not_an_input_is_refused() -> None:
    h = started()
    answer(h, "alice@example.com", "decline")
    wrong = h.send(
        InputResponded(
            run_id=RUN_ID, node_run_id=node_run_id(RUN_ID, "rollback"),
            button_identifier="approve", submitted_by="a@b.co", submitted_at=START,
        )
    )  # fmt: skip
    assert wrong.rejection is not None
    assert wrong.rejection.code == "not_an_input"


def test_a_report_cannot_complete_an_input_but_may_add_logs() -> None:
    h = started()
    done = h.complete("approval", output={"selectedOutlet": {"identifier": "approve"}})
    assert done.rejection is not None
    assert done.rejection.code == "input_needs_response"
    logs = [LogEntry(log_level="INFO", log="notification 0: POST https://hook answered 200")]
    assert h.update("approval", logs=logs).accepted
    assert h.node_run("approval").status == "IN_PROGRESS"
    assert h.node_run("approval").output["responses"] == []


def test_a_notification_log_after_completion_is_appended() -> None:
    h = started()
    answer(h, "alice@example.com", "decline")
    logs = [LogEntry(log_level="WARN", log="notification 0: POST https://hook failed")]
    late = h.send(
        NodeRunUpdated(run_id=RUN_ID, node_run_id=NR, status="IN_PROGRESS", logs=logs,
                       sent_at=h.now)
    )  # fmt: skip
    assert late.accepted
    assert [e.kind for e in late.effects] == ["AppendLogs"]
    assert h.node_run("approval").result == "SUCCESS"


def test_cancel_ends_a_waiting_input_at_once_graceful_or_forced() -> None:
    for force in (False, True):
        h = started()
        h.cancel(force=force)
        assert (h.node_run("approval").result, h.run.result) == ("CANCELLED", "CANCELLED")
        late = answer(h, "alice@example.com")
        assert late.rejection is not None
        assert late.rejection.code == "input_closed"


def test_timeout_fails_the_approval_and_the_run() -> None:
    h = started(timeoutSeconds=3600)
    assert h.node_run("approval").deadline is not None
    answer(h, "alice@example.com")
    h.fire("node_timeout", "approval")
    node_run = h.node_run("approval")
    assert node_run.result == "FAILED"
    assert node_run.output["error"]["message"] == "timed out after 3600 s"
    assert [r["submitterInfo"]["submittedBy"] for r in node_run.output["responses"]] == [
        "alice@example.com"
    ]
    assert h.run.result == "FAILED"
    late = answer(h, "bob@example.com")
    assert late.rejection is not None
    assert late.rejection.code == "input_closed"


def test_a_failing_template_fails_the_node() -> None:
    h = started(description="{{ .outputs.trigger.service | error }}")
    node_run = h.node_run("approval")
    assert node_run.result == "FAILED"
    assert "template failed" in node_run.output["error"]["message"]
    assert h.run.result == "FAILED"


def test_a_form_that_renders_invalid_fails_the_node() -> None:
    form = {"properties": {"env": {"type": "string", "title": "{{ 5 }}"}},
            "buttons": [{"identifier": "approve", "label": "Approve"},
                        {"identifier": "decline", "label": "Decline"}]}  # fmt: skip
    h = started(userInputs=form)
    message = h.node_run("approval").output["error"]["message"]
    assert message.startswith("userInputs: the rendered form is not valid")


def test_the_form_is_rendered_without_secrets() -> None:
    h = started(description='token: {{ .secrets["deploy-token"] }}')
    assert SECRETS["deploy-token"] not in str(h.node_run("approval").output)


def test_webhook_notifications_go_to_the_executor_and_email_is_logged() -> None:
    h = started(notifications=[
        {"target": "webhook", "url": "https://hooks.test/{{ .workflowRun.identifier }}",
         "headers": {"X-Token": '{{ .secrets["deploy-token"] }}'}},
        {"target": "webhook", "url": "https://hooks.test/custom", "body": {"text": "hi"}},
        {"target": "email", "fields": [{"label": "Service", "value": "x"}]},
    ])  # fmt: skip
    first, second = [e.request for e in h.effects("PublishWebhookRequest", h.decisions[0])]
    assert first.url == f"https://hooks.test/{RUN_ID}"
    assert first.headers == {"X-Token": SECRETS["deploy-token"]}
    assert (first.notification, second.notification) == (0, 1)
    assert first.body["type"] == "INPUT_REQUESTED"
    assert first.body["respond"] == {
        "method": "POST",
        "path": f"/v1/workflows/nodes/runs/{NR}/respond",
    }
    assert first.body["context"]["nodeRunId"] == NR
    assert second.body == {"text": "hi"}
    assert first.work_key != second.work_key
    logs = [entry.log for entry in h.logs("approval")]
    assert "notification 2: email notifications are not configured (SWITCHYARD_SMTP_HOST)" in logs
    assert h.node_run("approval").status == "IN_PROGRESS"


def test_email_is_sent_to_responders_with_email_addresses_when_configured() -> None:
    field = {"label": "Service", "value": "{{ .outputs.trigger.service }}"}
    h = Harness(workflow(notifications=[{"target": "email", "fields": [field]}]))
    h.options = MachineOptions(email_configured=True)
    h.trigger({"service": "api"})
    [request] = [e.request for e in h.effects("PublishWebhookRequest", h.decisions[0])]
    assert request.email is not None
    assert request.email.to == ["alice@example.com", "bob@example.com"]
    assert "Service: api" in request.email.text
    assert request.email.subject == "Approval requested: Approve"


def test_a_failing_notification_template_is_a_warning_not_a_failure() -> None:
    h = started(notifications=[{"target": "webhook", "url": "{{ error }}"}])
    assert h.node_run("approval").status == "IN_PROGRESS"
    assert h.effects("PublishWebhookRequest", h.decisions[0]) == []
    assert any(
        e.log_level == "WARN" and e.log.startswith("notification 0 left out")
        for e in h.logs("approval")
    )
