"""``statusLabel``: from a worker's report, and from the CONDITION outlet taken."""

from __future__ import annotations

from typing import Any

from switchyard.engine.machine import to_workflow_run
from switchyard.schemas import StatusLabel

from .conftest import Harness, chain, trigger_node


def condition(**outlet: Any) -> dict[str, Any]:
    return {"identifier": "check", "config": {"type": "CONDITION", "outlets": [
        {"identifier": "go", "expression": "true", **outlet}]}}  # fmt: skip


def test_a_report_sets_the_node_runs_label_and_the_api_shows_it() -> None:
    h = Harness(chain(trigger_node(), {"identifier": "work", "config": {"type": "KAFKA"}}))
    h.trigger()
    h.update("work", status_label=StatusLabel(text="deploying", variant="info"))
    assert h.node_run("work").status_label == StatusLabel(text="deploying", variant="info")
    h.complete("work")  # a report without a label keeps the last one
    run = to_workflow_run(h.run, {}, h.workflow).model_dump(mode="json", by_alias=True)
    [work] = [nr for nr in run["nodeRuns"] if nr["node"]["identifier"] == "work"]
    assert work["statusLabel"] == {"text": "deploying", "variant": "info"}


def test_the_taken_outlet_labels_its_node_run_and_the_run() -> None:
    long = "x" * 500
    h = Harness(chain(trigger_node(), condition(
        statusLabel={"text": "approved", "variant": "success"},
        workflowStatusLabel={"text": long},
    )))  # fmt: skip
    h.trigger()
    assert h.node_run("check").status_label == StatusLabel(text="approved", variant="success")
    assert h.run.status_label == StatusLabel(text="x" * 200)  # cut to the shown length


def test_an_outlet_label_without_text_is_not_shown() -> None:
    h = Harness(chain(trigger_node(), condition(statusLabel={"variant": "danger"})))
    h.trigger()
    assert h.node_run("check").status_label is None
