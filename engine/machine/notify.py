"""An INPUT node's ``notifications``, sent when it starts waiting.

Each becomes a :class:`WebhookRequest` for the built-in webhook executor, with
``notification`` set to its index: the executor delivers it and reports only a log
line. A notification whose templates fail is logged (WARN) and left out; it never
fails the approval.

* ``webhook``: ``url``, ``headers`` and ``body`` rendered (secrets allowed, as for a
  WEBHOOK node). Without a ``body``, the executor sends :func:`default_body`:
  ``{type: "INPUT_REQUESTED", description, buttons, responders, context:
  {workflowIdentifier, workflowRunId, nodeRunId, nodeIdentifier}, respond: {method,
  path}}``.
* ``email``: with SMTP configured (``SWITCHYARD_SMTP_HOST``), one plain-text message
  to the responders' ``users`` that are email addresses, the ``fields`` rendered
  (without secrets: it leaves the server); else a log line says it is not configured.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from switchyard.engine.machine.context import template_context
from switchyard.engine.machine.effects import PublishWebhookRequest
from switchyard.engine.machine.outcome import describe
from switchyard.engine.machine.state import NodeRunState
from switchyard.engine.machine.step import Step
from switchyard.engine.templates import TemplatesUnavailable
from switchyard.schemas import InputConfig, Node, NodeRunContext, WebhookRequest
from switchyard.schemas.events import EmailMessage
from switchyard.schemas.workflow import EmailNotification, WebhookNotification

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
NOT_CONFIGURED = "email notifications are not configured (SWITCHYARD_SMTP_HOST)"


class _Failed(Exception):
    """A notification's template failed (already logged)."""


def respond_path(node_run_id: str) -> str:
    return f"/v1/workflows/nodes/runs/{node_run_id}/respond"


def send_notifications(
    step: Step, node: Node, node_run: NodeRunState, config: InputConfig, description: Any
) -> None:
    for index, notification in enumerate(config.notifications):
        try:
            if isinstance(notification, WebhookNotification):
                request = _webhook(step, node_run, notification, index, description)
            else:
                request = _email(step, node, node_run, config, notification, index, description)
        except _Failed:
            continue
        if request is not None:
            effect_id = f"{node_run.id}:notification:{index}"
            step.add(PublishWebhookRequest(id=effect_id, request=request))


def _render(step: Step, node_run: NodeRunState, value: Any, index: int, *, secrets: bool) -> Any:
    context = template_context(step.state, node_run, step.secrets if secrets else {})
    try:
        return step.templates.render(value, context)
    except TemplatesUnavailable:  # the engine is stopping: retry the event
        raise
    except Exception as error:  # one notification's failure is a log line, no more
        step.log(node_run, "WARN", f"notification {index} left out: {describe(error)}")
        raise _Failed from None


def _context(step: Step, node_run: NodeRunState) -> NodeRunContext:
    return NodeRunContext(
        workflow_identifier=step.state.workflow_identifier,
        workflow_run_id=step.state.run_id,
        node_run_id=node_run.id,
        node_identifier=node_run.node,
        run_id=node_run.id,
    )


def default_body(step: Step, node_run: NodeRunState, description: Any) -> dict[str, Any]:
    output = node_run.output if isinstance(node_run.output, dict) else {}
    return {
        "type": "INPUT_REQUESTED",
        "description": description,
        "buttons": output.get("userInputs", {}).get("buttons", []),
        "responders": output.get("responders", {}),
        "context": _context(step, node_run).model_dump(mode="json", by_alias=True),
        "respond": {"method": "POST", "path": respond_path(node_run.id)},
    }


def _webhook(
    step: Step, node_run: NodeRunState, notification: WebhookNotification, index: int,
    description: Any,
) -> WebhookRequest | None:  # fmt: skip
    raw = {"url": notification.url, "headers": notification.headers, "body": notification.body}
    rendered = _render(step, node_run, raw, index, secrets=True)
    url = rendered["url"]
    if not isinstance(url, str) or not url:
        step.log(node_run, "WARN", f"notification {index} left out: url rendered to {url!r}")
        return None
    headers = {
        k: v if isinstance(v, str) else orjson.dumps(v).decode()
        for k, v in rendered["headers"].items()
    }
    body = rendered["body"] if notification.body is not None else None
    step.log(node_run, "INFO", f"notification {index}: {notification.method} {url}")
    return WebhookRequest(
        url=url, method=notification.method, headers=headers,
        body=body if body is not None else default_body(step, node_run, description),
        context=_context(step, node_run), notification=index,
    )  # fmt: skip


def _email(
    step: Step, node: Node, node_run: NodeRunState, config: InputConfig,
    notification: EmailNotification, index: int, description: Any,
) -> WebhookRequest | None:  # fmt: skip
    if not step.options.email_configured:
        step.log(node_run, "WARN", f"notification {index}: {NOT_CONFIGURED}")
        return None
    to = [user for user in config.responders.users if _EMAIL.match(user)]
    if not to:
        step.log(node_run, "WARN", f"notification {index}: no responder user is an email address")
        return None
    fields = [{"label": f.label, "value": f.value} for f in notification.fields]
    rendered = _render(step, node_run, fields, index, secrets=False)
    lines = [f"{field['label']}: {_text(field['value'])}" for field in rendered]
    title = node.title or node.identifier
    text = "\n".join(
        [*([str(description)] if description else []), "", *lines, "",
         f"Answer: POST {respond_path(node_run.id)} (run {step.state.run_id})"]
    )  # fmt: skip
    message = EmailMessage(to=to, subject=f"Approval requested: {title}", text=text)
    step.log(node_run, "INFO", f"notification {index}: email to {', '.join(to)}")
    return WebhookRequest(
        url="mailto:" + ",".join(to), method="POST", context=_context(step, node_run),
        notification=index, email=message,
    )  # fmt: skip


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()
