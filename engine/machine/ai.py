"""Starting an ``AI`` or ``AI_AGENT`` node: rendered, then handed to the AI executor.

Without an endpoint configured the node fails at once, saying how to configure one,
rather than wait for an executor that will never answer.
"""

from __future__ import annotations

from typing import Any

from switchyard.engine.machine.context import template_context
from switchyard.engine.machine.effects import PublishAiRequest
from switchyard.engine.machine.outcome import describe, fail
from switchyard.engine.machine.state import NodeRunState
from switchyard.engine.machine.step import Step
from switchyard.engine.templates import TemplatesUnavailable
from switchyard.schemas import AiAgentConfig, AiConfig, AiRequest, Node, NodeRunContext

NOT_CONFIGURED = (
    "AI nodes need an OpenAI-compatible chat-completions endpoint: set "
    "SWITCHYARD_AI_BASE_URL (e.g. https://api.openai.com/v1), SWITCHYARD_AI_API_KEY and "
    "optionally SWITCHYARD_AI_MODEL on the engine and the executor"
)


def start_ai(
    step: Step, node: Node, node_run: NodeRunState, config: AiConfig | AiAgentConfig
) -> None:
    if not step.options.ai_configured:
        fail(step, node_run, NOT_CONFIGURED)
        return
    prompts = _render(step, node_run, _prompts(config))
    if prompts is None:
        return
    system, user = prompts["system"], prompts["user"]
    if not isinstance(user, str) or not user:
        fail(step, node_run, f"userPrompt: must render to non-empty text (got {user!r})")
        return
    request = AiRequest(
        system_prompt=system if isinstance(system, str) else str(system),
        user_prompt=user,
        model=config.model,
        output_schema=config.output_schema,
        timeout_seconds=config.timeout_seconds,
        context=NodeRunContext(
            workflow_identifier=step.state.workflow_identifier,
            workflow_run_id=step.state.run_id, node_run_id=node_run.id,
            node_identifier=node_run.node, run_id=node_run.id,
        ),
    )  # fmt: skip
    step.add(PublishAiRequest(id=f"{node_run.id}:ai", request=request))
    unused = [name for name, value in (("tools", config.tools), ("mcpServers", config.mcp_servers))
              if value]  # fmt: skip
    if unused:
        step.log(node_run, "WARN", f"{' and '.join(unused)}: not used by this server")
    step.log(node_run, "INFO", "sent to the AI executor, waiting for the completion")
    if node.verbose:
        step.log(node_run, "DEBUG", f"prompt: {user}")


def _prompts(config: AiConfig | AiAgentConfig) -> dict[str, Any]:
    if isinstance(config, AiAgentConfig):
        system = f"You are the agent {config.agent_identifier!r}."
    else:
        system = config.system_prompt
    return {"system": system, "user": config.user_prompt}


def _render(step: Step, node_run: NodeRunState, value: dict[str, Any]) -> dict[str, Any] | None:
    context = template_context(step.state, node_run, step.secrets)
    try:
        rendered = step.templates.render(value, context)
    except TemplatesUnavailable:  # the engine is stopping: retry the event
        raise
    except Exception as error:  # a template's failure fails its node, no more
        fail(step, node_run, f"template failed: {describe(error)}")
        return None
    return rendered if isinstance(rendered, dict) else None
