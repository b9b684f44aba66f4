"""Starting a node: CONDITION runs here; action nodes become effects and wait.

Config templates are rendered just before the node runs (SPEC §3); a template that
fails fails the node with an ERROR log naming the expression.

| kind                 | effect                  | waits for                                  |
|----------------------|-------------------------|--------------------------------------------|
| CONDITION            | none                    | nothing: completes at once                 |
| WEBHOOK synchronized | PublishWebhookRequest   | the executor's NodeRunUpdated              |
| WEBHOOK async        | PublishWebhookRequest   | the receiver's PATCH (executor posts only) |
| WEBHOOK agent: true  | PublishAgentRequest or MarkPendingClaim (agent.py) | the agent's PATCH |
| KAFKA                | PublishNodeRunRequest   | the consumer's PATCH or NodeRunUpdated     |
| INTEGRATION_ACTION   | MarkPendingClaim        | claim → ack → PATCH by a worker            |
| UPSERT_ENTITY        | PublishEntityRequest    | the entity executor's NodeRunUpdated       |
| INPUT                | notifications (approval.py) | its responders' InputResponded         |

UPSERT_ENTITY is written by a built-in executor rather than in the engine's apply
step: the write needs the entity's current state (a merge, the event's ``before``)
and the blueprint's schema, read and checked against a store other processes write
too (the API); the engine's step only sees its run. The executor's write is
idempotent per node run (``consumers/entities.py``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson

from switchyard.engine.machine.agent import agent_polls, start_agent_webhook
from switchyard.engine.machine.ai import start_ai
from switchyard.engine.machine.approval import start_input
from switchyard.engine.machine.context import template_context
from switchyard.engine.machine.effects import (
    MarkPendingClaim,
    PublishEntityRequest,
    PublishNodeRunRequest,
    PublishWebhookRequest,
)
from switchyard.engine.machine.outcome import apply_labels, complete, describe, fail
from switchyard.engine.machine.state import NodeRunState
from switchyard.engine.machine.step import Step
from switchyard.engine.templates import TemplatesUnavailable
from switchyard.schemas import (
    AiAgentConfig,
    AiConfig,
    ConditionConfig,
    EntityRequest,
    InputConfig,
    IntegrationActionConfig,
    KafkaConfig,
    Node,
    NodeRunContext,
    NodeRunRequest,
    UpsertEntityConfig,
    WebhookConfig,
    WebhookRequest,
    node_uid,
)
from switchyard.schemas.trusted import trusted

_NOT_RENDERED = object()


def start_node(step: Step, node: Node, attempt: int = 1, retry_of: str | None = None) -> None:
    """Create ``node``'s node run (attempt ``attempt``) and start it (a trigger is never
    started here); a node that waits on the outside world gets its deadline."""
    node_run = step.new_node_run(node, attempt, retry_of)
    config = node.config
    if isinstance(config, ConditionConfig):
        _run_condition(step, node_run, config)
    elif isinstance(config, WebhookConfig):
        _start_webhook(step, node, node_run, config)
    elif isinstance(config, KafkaConfig):
        _start_kafka(step, node, node_run, config)
    elif isinstance(config, IntegrationActionConfig):
        _start_integration(step, node_run, config)
    elif isinstance(config, AiConfig | AiAgentConfig):
        start_ai(step, node, node_run, config)
    elif isinstance(config, UpsertEntityConfig):
        _start_upsert(step, node, node_run, config)
    elif isinstance(config, InputConfig):
        start_input(step, node, node_run, config)
    else:  # a second trigger can't be reached: parse_workflow forbids edges into triggers
        fail(step, node_run, f"{config.type} nodes can't run inside a run")
    if node_run.in_flight:
        _arm_deadline(step, node, node_run)


def node_timeout(step: Step, node: Node) -> float | None:
    """The engine's deadline for ``node``, in seconds: its ``timeoutSeconds``, else the
    server's default, for the kinds that wait on the outside world. A synchronized
    webhook's timeout bounds its HTTP call in the executor instead (not an agent's:
    the agent makes that call, and the engine waits for its report)."""
    config = node.config
    if isinstance(config, WebhookConfig) and config.synchronized and not config.agent:
        return None
    if isinstance(config, WebhookConfig | KafkaConfig | IntegrationActionConfig):
        return config.timeout_seconds or step.options.default_timeout_s
    if isinstance(config, UpsertEntityConfig | InputConfig):
        return config.timeout_seconds  # an approval waits for people: no default
    if isinstance(config, AiConfig | AiAgentConfig):
        return config.timeout_seconds  # the executor bounds each call as well
    return None


def _arm_deadline(step: Step, node: Node, node_run: NodeRunState) -> None:
    seconds = node_timeout(step, node)
    if seconds is None:
        return
    node_run.deadline = step.now + timedelta(seconds=seconds)
    step.set_timer("node_timeout", node_run.deadline, node_run)


def _render(step: Step, node_run: NodeRunState, value: Any, *, secrets: bool = True) -> Any:
    """``value`` rendered; on failure the node is failed and ``_NOT_RENDERED`` returned."""
    context = template_context(step.state, node_run, step.secrets if secrets else {})
    try:
        return step.templates.render(value, context)
    except TemplatesUnavailable:  # the engine is stopping: retry the event
        raise
    except Exception as error:  # a template plug-in's failure fails one node, no more
        fail(step, node_run, f"template failed: {describe(error)}")
        return _NOT_RENDERED


def _request_context(step: Step, node_run: NodeRunState) -> NodeRunContext:
    # The engine's own ids (see schemas.trusted): ``runId`` is the node run's, as the
    # model's check wants.
    return trusted(
        NodeRunContext,
        workflow_identifier=step.state.workflow_identifier,
        workflow_run_id=step.state.run_id,
        node_run_id=node_run.id,
        node_identifier=node_run.node,
        run_id=node_run.id,
    )


def _run_condition(step: Step, node_run: NodeRunState, config: ConditionConfig) -> None:
    """First outlet whose expression yields ``true`` wins, else the fallback, else the
    branch ends. Output ``{selectedOutlet, fallback}``; ``fallback`` is true when no
    outlet matched (whether or not a fallback connection exists)."""
    context = template_context(step.state, node_run, step.secrets)
    for outlet in config.outlets:
        try:
            value = step.templates.evaluate(outlet.expression, context)
        except TemplatesUnavailable:  # the engine is stopping: retry the event
            raise
        except Exception as error:  # see _render
            fail(step, node_run, f"outlet {outlet.identifier!r}: {describe(error)}")
            return
        if value is True:
            step.log(node_run, "INFO", f"outlet {outlet.identifier!r} matched")
            apply_labels(step, node_run, outlet.status_label, outlet.workflow_status_label)
            selected = {"identifier": outlet.identifier, "title": outlet.title}
            edges = step.graph.outlet_edge(node_run.node, outlet.identifier)
            complete(step, node_run, {"selectedOutlet": selected, "fallback": False}, edges)
            return
    edges = step.graph.outlet_edge(node_run.node, None)
    step.log(
        node_run,
        "INFO",
        "no outlet matched: following the fallback"
        if edges
        else "no outlet matched and there is no fallback: this branch ends",
    )
    complete(step, node_run, {"selectedOutlet": None, "fallback": True}, edges)


def _start_webhook(step: Step, node: Node, node_run: NodeRunState, config: WebhookConfig) -> None:
    raw = {"url": config.url, "headers": config.headers, "body": config.body}
    rendered = _render(step, node_run, raw, secrets=not agent_polls(step, config))
    if rendered is _NOT_RENDERED:
        return
    url = rendered["url"]
    if not isinstance(url, str) or not url:
        fail(step, node_run, f"url: must render to a non-empty string (got {url!r})")
        return
    # A header template may yield a number or an object; HTTP wants text.
    headers = {k: v if isinstance(v, str) else _json(v) for k, v in rendered["headers"].items()}
    if config.agent:
        start_agent_webhook(step, node_run, config, url, headers, rendered["body"])
    else:
        _send_webhook(step, node, node_run, config, url, headers, rendered["body"])
    if node.verbose:
        step.log(node_run, "DEBUG", f"request headers: {_json(headers)}")
        step.log(node_run, "DEBUG", f"request body: {_json(rendered['body'])}")


def _send_webhook(
    step: Step, node: Node, node_run: NodeRunState, config: WebhookConfig,
    url: str, headers: dict[str, str], body: Any,
) -> None:  # fmt: skip
    request = WebhookRequest(
        url=url,
        method=config.method,
        headers=headers,
        body=body,
        synchronized=config.synchronized,
        timeout_seconds=config.timeout_seconds,
        on_timeout=config.on_timeout,
        verbose=node.verbose,
        context=_request_context(step, node_run),
    )
    step.add(PublishWebhookRequest(id=f"{node_run.id}:webhook", request=request))
    waits = "the response" if config.synchronized else "the receiver to report back"
    step.log(
        node_run,
        "INFO",
        f"{config.method} {url}: sent to the webhook executor, waiting for {waits}",
    )


def _start_kafka(step: Step, node: Node, node_run: NodeRunState, config: KafkaConfig) -> None:
    payload = _render(step, node_run, config.payload)
    if payload is _NOT_RENDERED:
        return
    # ``payload`` is a rendered template: JSON values, which ``Any`` takes as they are.
    request = trusted(NodeRunRequest, payload=payload, context=_request_context(step, node_run))
    step.add(trusted(PublishNodeRunRequest, id=f"{node_run.id}:request", request=request))
    step.log(node_run, "INFO", "published to the node-run request topic, waiting for a consumer")
    if node.verbose:
        step.log(node_run, "DEBUG", f"payload: {_json(payload)}")


def _start_integration(step: Step, node_run: NodeRunState, config: IntegrationActionConfig) -> None:
    # No secrets here: Port doesn't allow them in integration actions, and the rendered
    # config is shown to every worker that claims the node run.
    raw = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    rendered = _render(step, node_run, raw, secrets=False)
    if rendered is _NOT_RENDERED:
        return
    installation = rendered.get("installationId")
    if not isinstance(installation, str) or not installation:
        fail(step, node_run, "installationId: not set, no worker can claim this node run")
        return
    node_run.installation_id = installation
    step.add(
        MarkPendingClaim(
            id=f"{node_run.id}:claim",
            installation_id=installation,
            node_run_id=node_run.id,
            run_id=step.state.run_id,
            config=rendered,
            node_uid=node_uid(step.state.workflow_identifier, node_run.node),
        )
    )
    step.log(node_run, "INFO", f"pending for installation {installation!r}, waiting for a worker")


def _start_upsert(
    step: Step, node: Node, node_run: NodeRunState, config: UpsertEntityConfig
) -> None:
    raw = {
        "blueprintIdentifier": config.blueprint_identifier,
        "mapping": config.mapping.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    rendered = _render(step, node_run, raw)
    if rendered is _NOT_RENDERED:
        return
    blueprint = rendered["blueprintIdentifier"]
    if not isinstance(blueprint, str) or not blueprint:
        got = _json(blueprint)
        fail(step, node_run, f"blueprintIdentifier: must render to a non-empty string (got {got})")
        return
    mapping = rendered["mapping"]
    for field in ("properties", "relations"):
        if not isinstance(mapping.get(field, {}), dict):
            got = _json(mapping[field])
            fail(step, node_run, f"mapping.{field}: must render to an object (got {got})")
            return
    request = EntityRequest(
        blueprint_identifier=blueprint, entity=mapping, depth=step.state.depth,
        context=_request_context(step, node_run),
    )  # fmt: skip
    step.add(PublishEntityRequest(id=f"{node_run.id}:entity", request=request))
    step.log(node_run, "INFO", f"upserting an entity of blueprint {blueprint!r}")
    if node.verbose:
        step.log(node_run, "DEBUG", f"mapping: {_json(mapping)}")


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()
