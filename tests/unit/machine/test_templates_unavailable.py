"""An engine whose template sandbox is stopping must retry the event, not fail a node."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from switchyard.engine.machine import decide
from switchyard.engine.templates import TemplatesUnavailable
from switchyard.schemas import RunTriggered

from .conftest import RUN_ID, chain, trigger_node


class StoppingTemplates:
    def render(self, value: Any, context: Any) -> Any:
        raise TemplatesUnavailable("the jq sandbox pool is stopping")

    def evaluate(self, expression: str, context: Any) -> Any:
        raise TemplatesUnavailable("the jq sandbox pool is stopping")


@pytest.mark.parametrize(
    "node",
    [
        {"identifier": "work", "config": {"type": "KAFKA", "payload": {"x": "{{ .outputs }}"}}},
        {"identifier": "check", "config": {"type": "CONDITION", "outlets": [
            {"identifier": "yes", "title": "Yes", "expression": ".outputs.trigger"}]}},
    ],
)  # fmt: skip
def test_templates_unavailable_propagates_instead_of_failing_the_node(
    node: dict[str, Any],
) -> None:
    workflow = chain(trigger_node(), node)
    event = RunTriggered(
        run_id=RUN_ID, workflow_identifier="wf", created_by="t",
        triggered_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    with pytest.raises(TemplatesUnavailable):
        decide(
            None, event, workflow=workflow, now=datetime(2026, 1, 1, tzinfo=UTC),
            templates=StoppingTemplates(), secrets={},
        )  # fmt: skip
