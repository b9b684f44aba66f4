"""What templates see (SPEC §3), and masking of secrets in what is stored."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from switchyard.engine.machine.state import NodeRunState, RunState
from switchyard.engine.templates import mask_secrets
from switchyard.schemas import format_timestamp


class Masker:
    """Replaces secret values with ``****`` in strings, recursively in JSON values.

    A thin holder of the server's secrets over :func:`mask_secrets`, which also masks
    overlapping secrets as one span and their JSON-escaped forms.
    """

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._secrets = {k: v for k, v in secrets.items() if isinstance(v, str)}

    def text(self, value: str) -> str:
        masked: str = mask_secrets(value, self._secrets)
        return masked

    def value(self, value: Any) -> Any:
        return mask_secrets(value, self._secrets)


def outputs_view(state: RunState) -> dict[str, Any]:
    """``.outputs``: stored outputs, plus ``trigger`` for the trigger that fired."""
    outputs = dict(state.outputs)
    if state.trigger in outputs:
        outputs["trigger"] = outputs[state.trigger]
    return outputs


def template_context(
    state: RunState, node_run: NodeRunState, secrets: Mapping[str, str]
) -> dict[str, Any]:
    """The context of a node's config templates, rendered just before it runs."""
    return {
        "outputs": outputs_view(state),
        "secrets": dict(secrets),
        "workflow": {"identifier": state.workflow_identifier, "version": state.workflow_version},
        "workflowRun": {
            "identifier": state.run_id,
            "createdAt": format_timestamp(state.created_at),
            "trigger": {"identifier": state.trigger, "by": state.created_by},
        },
        "workflowNodeRun": {
            "identifier": node_run.id,
            "createdAt": format_timestamp(node_run.created_at),
        },
    }


def variables_context(
    state: RunState, node_run: NodeRunState, secrets: Mapping[str, str], raw: Any
) -> dict[str, Any]:
    """The context of ``variables`` and ``links``: ``.result`` is the raw output.

    The raw output's keys are also at the root, for definitions written against
    Port's older docs (``{{ .response.data.id }}``); the named keys win over them.
    """
    root = dict(raw) if isinstance(raw, dict) else {}
    return {**root, "result": raw, **template_context(state, node_run, secrets)}
