"""The worker SDK's metrics: handler calls by result and exception class, reports, the
webhook executor's calls by status class and outcome, and a worker's opt-in ops
endpoints serving them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from switchyard.consumers import ClaimWorker, KafkaWorker, RunsClient, WorkContext
from switchyard.consumers.context import NodeLogger
from switchyard.consumers.egress import EgressPolicy, install_egress_guard
from switchyard.consumers.webhook import WebhookExecutor
from switchyard.schemas import WebhookRequest, node_run_id
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from tests.bridge.support import integration_workflow, new_installation
from tests.consumers import stack
from tests.helpers import LocalHandler, serving, until
from tests.integration.engine_support import consume, new_run_id
from tests.ports import on_a_free_port

pytestmark = pytest.mark.integration

# The worker tests' stack: topics and a dev auth file, the engine, the bridge over HTTP.
topics = stack.topics
templates = stack.templates
engine = stack.engine
api = stack.api
client = stack.client

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _scrape(url: str) -> Samples:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{url}/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _assert_one_success_and_one_error(samples: Samples, node: str, error: str) -> None:
    seconds = "switchyard_worker_handler_seconds_count"
    assert _sample(samples, seconds, node=node, result="success") == 1
    assert _sample(samples, seconds, node=node, result="error") == 1
    assert _sample(samples, seconds, node=node, result="failed") == 0
    errors = "switchyard_worker_handler_errors_total"
    assert _sample(samples, errors, node=node, error=error) == 1
    reports = "switchyard_worker_reports_total"
    assert _sample(samples, reports, node=node, status="completed") == 2
    assert _sample(samples, reports, node=node, status="error") == 0


def _request(run_id: str, node: str, workflow: str, fail: bool) -> bytes:
    nr = node_run_id(run_id, node)
    return orjson.dumps({"payload": {"fail": fail}, "context": {
        "workflowIdentifier": workflow, "workflowRunId": run_id, "nodeRunId": nr,
        "nodeIdentifier": node, "runId": nr}})  # fmt: skip


async def _handle(ctx: WorkContext) -> dict[str, bool]:
    if ctx.payload["fail"]:
        raise ValueError("the handler failed on purpose")
    return {"ok": True}


async def test_kafka_worker_metrics_on_its_opt_in_endpoint(
    topics: Settings, producer: EventProducer
) -> None:
    registry = TopicRegistry.from_settings(topics)
    node, workflow = f"metrics-{uuid.uuid4().hex[:8]}", f"w-{uuid.uuid4().hex[:6]}"
    runs = {new_run_id(): False, new_run_id(): True}
    for run_id, fail in runs.items():
        await producer.send_and_wait(registry.node_run_requests.name, run_id,
                                     _request(run_id, node, workflow, fail))  # fmt: skip

    def on(port: int) -> KafkaWorker[Any]:
        return KafkaWorker(topics, _handle, node_identifiers=[node], workflows=[workflow],
                           ops_port=port)  # fmt: skip

    async with on_a_free_port(on) as (port, worker):
        url = f"http://127.0.0.1:{port}"
        keys = {run_id.encode() for run_id in runs}
        updates = await consume(topics, registry.inbox.name, 2, lambda r: r.key in keys)
        results = {orjson.loads(u.value)["result"] for u in updates}
        assert results == {"SUCCESS", "FAILED"}

        async def done() -> int:
            return worker.completed

        await until(done, lambda n: n == 2, within=30)
        # The node label is the node identifier: the worker keeps only that node.
        _assert_one_success_and_one_error(await _scrape(url), node, "ValueError")

        async def ready() -> httpx.Response:
            async with httpx.AsyncClient() as http:
                return await http.get(f"{url}/readyz")

        found = await until(ready, lambda r: r.status_code == 200, within=30)
        assert set(found.json()["checks"]) == {"consumer", "kafka"}
    with pytest.raises(httpx.ConnectError):  # served until stop() only
        await _scrape(url)


async def test_claim_worker_metrics_and_the_bridges_claims(
    topics: Settings, engine: object, client: RunsClient
) -> None:
    installation, workflow = new_installation(), f"wf-{uuid.uuid4().hex[:10]}"
    await client.request("POST", "/v1/workflows", json=integration_workflow(workflow, installation))
    runs = [await client.trigger(workflow, {"name": name}) for name in ("fine", "fail")]

    async def handle(ctx: WorkContext) -> dict[str, bool]:
        if ctx.payload["ref"] == "fail":
            raise KeyError("the handler failed on purpose")
        return {"ok": True}

    name = f"claims-{uuid.uuid4().hex[:8]}"

    def on(port: int) -> ClaimWorker:
        return ClaimWorker(client, installation, handle, metrics_name=name, ops_port=port,
                           min_backoff=0.05, max_backoff=0.2)  # fmt: skip

    async with on_a_free_port(on) as (port, worker):

        async def done() -> int:
            return worker.completed

        await until(done, lambda n: n == 2, within=30)
        samples = await _scrape(f"http://127.0.0.1:{port}")
        async with httpx.AsyncClient() as http:
            ready = await http.get(f"http://127.0.0.1:{port}/readyz")
        assert ready.status_code == 200, ready.text
    _assert_one_success_and_one_error(samples, name, "KeyError")

    async def results() -> list[str | None]:
        return [(await client.get_run(run.run_id)).result for run in runs]

    await until(results, lambda found: found == ["SUCCESS", "FAILED"], within=30)
    # The bridge (in this process) counted the same node runs claimed and acked.
    claimed = {"installation": installation}
    assert REGISTRY.get_sample_value("switchyard_claimed_total", claimed) == 2
    acked = {"installation": installation, "outcome": "acked"}
    assert REGISTRY.get_sample_value("switchyard_claim_acks_total", acked) == 2


class _Answers(LocalHandler):
    """``/status/<n>`` answers n; ``/sleep/<ms>`` answers 200 after that long."""

    def _reply(self) -> None:
        self.body()
        if self.path.startswith("/sleep/"):
            time.sleep(int(self.path.split("/")[2]) / 1000)
        status = int(self.path.split("/")[2]) if self.path.startswith("/status/") else 200
        self.answer(status, {"path": self.path})

    do_POST = _reply


@pytest.fixture
def local() -> Iterator[str]:
    with serving(_Answers) as (url, _):
        yield url


def _webhook(url: str, **config: Any) -> WebhookRequest:
    nr = f"wfnr_{uuid.uuid4().hex[:16]}"
    return WebhookRequest.model_validate({
        "url": url, "method": "POST", "body": {}, **config,
        "context": {"workflowIdentifier": "wf-hooks", "workflowRunId": new_run_id(),
                    "nodeRunId": nr, "nodeIdentifier": "call", "runId": nr},
    })  # fmt: skip


def _calls(status_class: str, outcome: str) -> float:
    labels = {"status_class": status_class, "outcome": outcome}
    return REGISTRY.get_sample_value("switchyard_webhook_calls_total", labels) or 0.0


async def test_webhook_calls_by_status_class_and_outcome(local: str) -> None:
    kinds = [("2xx", "success"), ("5xx", "failed"), ("4xx", "failed"), ("none", "timeout"),
             ("none", "refused")]  # fmt: skip
    before = {kind: _calls(*kind) for kind in kinds}
    timed = REGISTRY.get_sample_value("switchyard_webhook_call_seconds_count") or 0.0
    log = NodeLogger(lambda: datetime.now(UTC), "wfnr_metrics")
    async with httpx.AsyncClient() as http:
        executor = WebhookExecutor(http)
        for path in ("/", "/", "/status/503", "/status/404"):
            await executor.execute(_webhook(f"{local}{path}"), log)
        await executor.execute(_webhook(f"{local}/sleep/1500", timeoutSeconds=0.2), log)
    async with httpx.AsyncClient() as guarded:
        # The default policy refuses loopback targets (the local server).
        install_egress_guard(guarded, EgressPolicy.from_settings(Settings()))
        outcome = await WebhookExecutor(guarded).execute(_webhook(f"{local}/"), log)
        assert outcome.result == "FAILED"
    found = {kind: _calls(*kind) - before[kind] for kind in kinds}
    assert found == {("2xx", "success"): 2, ("5xx", "failed"): 1, ("4xx", "failed"): 1,
                     ("none", "timeout"): 1, ("none", "refused"): 1}  # fmt: skip
    assert (REGISTRY.get_sample_value("switchyard_webhook_call_seconds_count") or 0) - timed == 6
