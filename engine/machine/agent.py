"""``agent: true`` WEBHOOK nodes: Port's execution agent makes the call inside the
customer's network and reports back by PATCH (README: Execution agent).

How the agent takes them is the organization's setting (``portAgentStreamerName``,
which the agent PATCHes at start-up), passed in as ``step.options.agent_streamer``:

- ``KAFKA`` (default): one message on ``<org id>.runs`` in the agent's envelope
  ``{headers, payload: {action: {invocationMethod}, ...body}, context: {runId, ...}}``,
  signed on its way out (the store's plan holds the secret, not the machine);
- ``POLLING``: claimable by installation ``_PORT_EXEC_AGENT``, whose claims read the
  top-level ``config`` ``{type, url, method, headers, agent, synchronized, body}``.

Never both. Synchronized, the agent PATCHes ``{response: {status, data}}`` (FAILED on
any error); not synchronized, it doesn't PATCH and the receiver reports, as for async
webhooks. Either way the node waits with the engine's deadline (``node_timeout``).
"""

from __future__ import annotations

from typing import Any

from switchyard.engine.machine.effects import MarkPendingClaim, PublishAgentRequest
from switchyard.engine.machine.state import NodeRunState
from switchyard.engine.machine.step import Step
from switchyard.schemas import WebhookConfig, node_uid

AGENT_INSTALLATION = "_PORT_EXEC_AGENT"


def agent_polls(step: Step, config: WebhookConfig) -> bool:
    """Whether ``config`` goes to the agent's claim queue (rendered without secrets: a
    claimed config is shown to whoever claims, as for integration actions)."""
    return config.agent and step.options.agent_streamer == "POLLING"


def start_agent_webhook(
    step: Step,
    node_run: NodeRunState,
    config: WebhookConfig,
    url: str,
    headers: dict[str, str],
    body: Any,
) -> None:
    """Hand a rendered ``agent: true`` webhook to the agent, the way it takes them."""
    invocation = {
        "type": "WEBHOOK", "url": url, "method": config.method, "headers": headers,
        "agent": True, "synchronized": config.synchronized,
    }  # fmt: skip
    if agent_polls(step, config):
        node_run.installation_id = AGENT_INSTALLATION
        step.add(
            MarkPendingClaim(
                id=f"{node_run.id}:claim", installation_id=AGENT_INSTALLATION,
                node_run_id=node_run.id, run_id=step.state.run_id,
                config={**invocation, "body": body},
                node_uid=node_uid(step.state.workflow_identifier, node_run.node),
            )
        )  # fmt: skip
        where = f"pending for Port's execution agent (claims as {AGENT_INSTALLATION})"
    else:
        message = agent_message(step, node_run, invocation, body)
        timestamp = int(step.now.timestamp())
        step.add(PublishAgentRequest(id=f"{node_run.id}:agent", message=message,
                                     timestamp=timestamp))  # fmt: skip
        where = "published for Port's execution agent"
    waits = "the agent's report" if config.synchronized else "the receiver to report back"
    step.log(node_run, "INFO", f"{config.method} {url}: {where}, waiting for {waits}")


def agent_message(
    step: Step, node_run: NodeRunState, invocation: dict[str, Any], body: Any
) -> dict[str, Any]:
    """The agent's envelope, unsigned (``headers`` empty). An object body's keys sit in
    ``payload`` beside ``action`` (its ``action.invocationMethod`` is ours); any other
    body is ``payload.body``. The agent POSTs the whole message to the URL by default."""
    payload: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
    if body is not None and not isinstance(body, dict):
        payload["body"] = body
    action = payload.get("action")
    payload["action"] = {**(action if isinstance(action, dict) else {}),
                         "invocationMethod": invocation}  # fmt: skip
    context = {
        "runId": node_run.id,
        "workflowRunId": step.state.run_id,
        "workflowIdentifier": step.state.workflow_identifier,
        "nodeRunId": node_run.id,
        "nodeIdentifier": node_run.node,
    }
    return {"headers": {}, "payload": payload, "context": context}
