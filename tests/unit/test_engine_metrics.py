"""The engine's metrics from plans: what a step starts and finishes, counted only for
applied plans, and the in-flight counts the apply step keeps in Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from switchyard.engine import metrics
from switchyard.engine.machine import decide
from switchyard.engine.machine.state import RunState
from switchyard.engine.store import keys
from switchyard.engine.store.plan import ApplyPlan, plan_decision
from switchyard.engine.store.transitions import NodeRunChange, Transitions
from switchyard.engine.templates import JqTemplates, TemplateError, TemplateLimits
from switchyard.schemas import NodeRunUpdated, RunTriggered, Workflow, node_run_id, parse_workflow
from switchyard.schemas.settings import Settings
from switchyard.topics.registry import TopicRegistry
from switchyard.topics.telemetry import metrics as telemetry

RUN_ID = "wfr_AbCdEfGh12345678"
START = datetime(2026, 1, 28, 10, 0, 0, tzinfo=UTC)
REGISTRY_OF_TOPICS = TopicRegistry.from_settings(Settings())
TAG = keys.tag_of(RUN_ID, REGISTRY_OF_TOPICS.inbox.partitions)


class Plain:
    """Templates for workflows without any: values as they are."""

    def render(self, value: Any, context: Any) -> Any:
        return value

    def evaluate(self, expression: str, context: Any) -> Any:
        return True


def _workflow(identifier: str) -> Workflow:
    return parse_workflow({"identifier": identifier, "version": 1, "nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
        {"identifier": "work", "config": {"type": "KAFKA", "payload": {"n": 1}}},
        {"identifier": "call", "config": {"type": "WEBHOOK", "url": "http://127.0.0.1:9/x"}},
    ], "connections": [
        {"sourceIdentifier": "trigger", "targetIdentifier": "work"},
        {"sourceIdentifier": "work", "targetIdentifier": "call"},
    ]})  # fmt: skip


def _steps(workflow: Workflow) -> list[ApplyPlan]:
    """The plans of a run: triggered, ``work`` succeeds 2 s later, ``call`` fails 3 s later."""
    events: list[Any] = [
        RunTriggered(run_id=RUN_ID, workflow_identifier=workflow.identifier,
                     created_by="u", triggered_at=START),
        NodeRunUpdated(run_id=RUN_ID, node_run_id=node_run_id(RUN_ID, "work"),
                       status="COMPLETED", result="SUCCESS", sent_at=START),
        NodeRunUpdated(run_id=RUN_ID, node_run_id=node_run_id(RUN_ID, "call"),
                       status="COMPLETED", result="FAILED", sent_at=START),
    ]  # fmt: skip
    state: RunState | None = None
    plans = []
    for offset, (event, at) in enumerate(zip(events, (0, 2, 5), strict=True)):
        now = START + timedelta(seconds=at)
        decision = decide(state, event, workflow=workflow, now=now, templates=Plain(), secrets={})
        assert decision.state is not None, decision.rejection
        plans.append(plan_decision(state, decision, offset=offset, registry=REGISTRY_OF_TOPICS,
                                   tag=TAG, workflow=workflow))  # fmt: skip
        state = decision.state
    return plans


def test_each_step_says_what_it_started_and_finished() -> None:
    triggered, worked, failed = (plan.facts for plan in _steps(_workflow("wf")))
    assert triggered == Transitions("wf", True, None, 0.0, (
        NodeRunChange("SELF_SERVE_TRIGGER", True, "SUCCESS", 0.0),
        NodeRunChange("KAFKA", True, None, 0.0),
    ))  # fmt: skip
    assert worked == Transitions("wf", False, None, 0.0, (
        NodeRunChange("KAFKA", False, "SUCCESS", 2.0),
        NodeRunChange("WEBHOOK", True, None, 0.0),
    ))  # fmt: skip
    assert failed == Transitions("wf", False, "FAILED", 5.0, (
        NodeRunChange("WEBHOOK", False, "FAILED", 3.0),
    ))  # fmt: skip


def test_the_apply_step_counts_node_runs_in_flight_by_type() -> None:
    def in_flight(plan: ApplyPlan) -> list[list[str]]:
        return [c for c in plan.commands if c[:2] == ["HINCRBY", keys.node_runs_in_flight(TAG)]]

    triggered, worked, failed = _steps(_workflow("wf"))
    assert in_flight(triggered) == [["HINCRBY", keys.node_runs_in_flight(TAG), "KAFKA", "1"]]
    assert in_flight(worked) == [
        ["HINCRBY", keys.node_runs_in_flight(TAG), "KAFKA", "-1"],
        ["HINCRBY", keys.node_runs_in_flight(TAG), "WEBHOOK", "1"],
    ]
    assert in_flight(failed) == [["HINCRBY", keys.node_runs_in_flight(TAG), "WEBHOOK", "-1"]]


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def enabled() -> Iterator[None]:
    was = telemetry.enabled()
    telemetry.set_enabled(True)
    yield
    telemetry.set_enabled(was)


@pytest.mark.usefixtures("enabled")
def test_only_applied_plans_count_and_each_once() -> None:
    workflow = f"wf-{uuid.uuid4().hex[:8]}"
    plans = _steps(_workflow(workflow))
    metrics.transitions_applied(plans, [1, 0, 1])  # the middle one was a redelivery
    metrics.transitions_applied(plans, [0, 0, -1])  # the batch again: nothing applied
    assert _value("switchyard_runs_started_total", workflow=workflow) == 1
    assert _value("switchyard_runs_completed_total", workflow=workflow, result="FAILED") == 1
    assert _value("switchyard_runs_completed_total", workflow=workflow, result="SUCCESS") == 0
    duration = "switchyard_run_duration_seconds"
    assert _value(f"{duration}_count", workflow=workflow, result="FAILED") == 1
    assert _value(f"{duration}_sum", workflow=workflow, result="FAILED") == 5.0


def test_nothing_is_recorded_when_metrics_are_off() -> None:
    workflow = f"wf-{uuid.uuid4().hex[:8]}"
    was = telemetry.enabled()
    telemetry.set_enabled(False)
    try:
        metrics.transitions_applied(_steps(_workflow(workflow)), [1, 1, 1])
        metrics.batch_handled(["dead_lettered"], {0: f"code-{workflow}"}, 0.0, 0.0, 0.0, 0.0)
    finally:
        telemetry.set_enabled(was)
    assert (
        REGISTRY.get_sample_value("switchyard_runs_started_total", {"workflow": workflow}) is None
    )
    letters = REGISTRY.get_sample_value(
        "switchyard_dead_letters_total", {"reason": f"code-{workflow}"}
    )
    assert letters is None


@pytest.mark.usefixtures("enabled")
def test_a_dead_letter_counts_only_when_its_record_was_dead_lettered() -> None:
    code = f"code-{uuid.uuid4().hex[:8]}"
    before = _value("switchyard_inbox_records_total", outcome="redelivered")
    batches = _value("switchyard_engine_batch_records_count")
    # Record 0's letter rode a plan that was a redelivery: not sent, not counted.
    metrics.batch_handled(["redelivered", "dead_lettered"], {0: code, 1: code}, 0.0, 0.1, 0.2, 0.3)
    assert _value("switchyard_dead_letters_total", reason=code) == 1
    assert _value("switchyard_inbox_records_total", outcome="redelivered") == before + 1
    assert _value("switchyard_engine_batch_records_count") == batches + 1


class FakeConsumer:
    def __init__(self, highwaters: dict[Any, int | None], positions: dict[Any, int]) -> None:
        self.highwaters = highwaters
        self.positions = positions

    def assignment(self) -> set[Any]:
        return set(self.highwaters)

    def highwater(self, tp: Any) -> int | None:
        return self.highwaters[tp]

    async def position(self, tp: Any) -> int | None:
        return self.positions[tp]


def test_inbox_lag_is_highwater_minus_committed_per_assigned_partition() -> None:
    p0, p1, p2 = (TopicPartition("inbox", n) for n in range(3))
    consumer = FakeConsumer({p0: 100, p1: 50, p2: None}, {p0: 99, p1: 20, p2: 0})
    asyncio.run(metrics.refresh_inbox_lag(consumer, {p0: 90}))
    assert _value("switchyard_inbox_lag_records", partition="0") == 10  # committed, not position
    assert _value("switchyard_inbox_lag_records", partition="1") == 30
    assert REGISTRY.get_sample_value("switchyard_inbox_lag_records", {"partition": "2"}) is None
    asyncio.run(metrics.refresh_inbox_lag(FakeConsumer({p1: 50}, {p1: 50}), {}))
    assert REGISTRY.get_sample_value("switchyard_inbox_lag_records", {"partition": "0"}) is None


@pytest.mark.usefixtures("enabled")
def test_a_service_started_again_replaces_its_refresher() -> None:
    seen: list[str] = []

    async def first() -> None:
        seen.append("first")

    async def second() -> None:
        seen.append("second")

    async def scrape() -> None:
        for refresh in telemetry.refreshers():
            await refresh()

    metrics.watch("test-source", first)
    metrics.watch("test-source", second)
    metrics.unwatch("test-source", first)  # a stale stop: not the current one
    asyncio.run(scrape())
    metrics.unwatch("test-source", second)
    asyncio.run(scrape())
    assert seen.count("second") == 1
    assert "first" not in seen


@pytest.mark.usefixtures("enabled")
def test_a_sandbox_killed_by_its_timeout_is_counted_as_a_timeout_restart() -> None:
    before = _value("switchyard_template_sandbox_restarts_total", reason="timeout")
    renders = _value("switchyard_template_eval_seconds_count")
    limits = TemplateLimits(timeout_ms=200, max_output_bytes=64 * 1024, memory_mb=64, workers=1)
    with JqTemplates(limits) as templates:
        with pytest.raises(TemplateError):
            templates.render({"x": "{{ def f: f; f }}"}, {})
        assert templates.evaluate(".a", {"a": 1}) == 1
    assert _value("switchyard_template_sandbox_restarts_total", reason="timeout") == before + 1
    assert _value("switchyard_template_eval_seconds_count") == renders + 2
