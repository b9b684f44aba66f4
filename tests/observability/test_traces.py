"""One trace across the real processes: bridge, engine and webhook executor as
subprocesses, and a Kafka worker in this process, all exporting over OTLP/HTTP to a
receiver in the test. A run of trigger → call (WEBHOOK, to a server in the test) →
work (KAFKA, done by the worker) must give one trace whose spans cover every hop in
order, with the run and node-run ids as attributes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from switchyard.bridge.credentials import hash_secret
from switchyard.consumers import KafkaWorker, WorkContext
from switchyard.schemas import node_run_id
from switchyard.schemas.settings import Settings
from switchyard.topics.reader import read_topic
from switchyard.topics.registry import TopicRegistry
from switchyard.topics.telemetry import tracing
from tests.helpers import LocalHandler, serving, until
from tests.observability.otlp_receiver import Received, ReceivedSpan, otlp_receiver
from tests.observability.processes import launched

pytestmark = pytest.mark.integration

CLIENT_SECRET = "traces-client-secret"
SERVER, CLIENT, CONSUMER = 2, 3, 5  # span kinds in OTLP's enum
WORKER = "switchyard-test-worker"


class Webhook(LocalHandler):
    """The WEBHOOK node's receiver: records the traceparent it was sent."""

    def do_POST(self) -> None:
        self.body()
        self.record(self.headers.get("traceparent"))
        self.answer(200, {"ok": True})


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    with otlp_receiver() as found:
        yield found


@pytest.fixture
def traced_here(receiver: tuple[str, Received], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tracing in this process too (the worker's), exporting to the receiver; the
    environment is set only while configuring, so the launched processes don't inherit
    the service name, and tracing is shut down after the test."""
    with monkeypatch.context() as env:
        env.setenv("OTEL_TRACES_EXPORTER", "otlp")
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver[0])
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
        env.setenv("OTEL_SERVICE_NAME", WORKER)
        assert tracing.configure_tracing("worker")
    try:
        yield
    finally:
        tracing.shutdown_tracing()


def workflow(identifier: str, url: str) -> dict[str, Any]:
    return {
        "identifier": identifier,
        "title": "Traced chain",
        "nodes": [
            {"identifier": "trigger", "title": "Start", "config": {
                "type": "SELF_SERVE_TRIGGER",
                "userInputs": {"properties": {"name": {"type": "string"}}, "required": ["name"]},
            }},
            {"identifier": "call", "title": "Call", "config": {
                "type": "WEBHOOK", "url": url, "method": "POST",
                "body": {"name": "{{ .outputs.trigger.name }}"},
            }},
            {"identifier": "work", "title": "Work", "config": {
                "type": "KAFKA", "payload": {"status": "{{ .outputs.call.response.status }}"},
            }},
        ],
        "connections": [
            {"sourceIdentifier": "trigger", "targetIdentifier": "call"},
            {"sourceIdentifier": "call", "targetIdentifier": "work"},
        ],
    }  # fmt: skip


def auth_file(home: Path) -> Path:
    path = home / "auth.json"
    admin = {"clientId": "admin", "clientSecretHash": hash_secret(CLIENT_SECRET),
             "email": "admin@example.com", "role": "Admin", "teams": []}  # fmt: skip
    path.write_bytes(orjson.dumps({"users": [admin], "machines": []}))
    return path


def traced_settings(topics: Settings, home: Path) -> Settings:
    return topics.model_copy(
        update={"auth_file": auth_file(home), "token_secret": SecretStr(uuid.uuid4().hex)}
    )


def otel_env(endpoint: str, **more: str) -> dict[str, str]:
    """What every launched process exports with: everything sampled, batches flushed fast."""
    return {
        "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_TRACES_SAMPLER": "parentbased_always_on", **more,
    }  # fmt: skip


async def log_in(api: httpx.AsyncClient) -> None:
    credentials = {"clientId": "admin", "clientSecret": CLIENT_SECRET}
    token = (await api.post("/v1/auth/access_token", json=credentials)).json()
    api.headers["Authorization"] = f"Bearer {token['accessToken']}"


async def work(ctx: WorkContext) -> dict[str, Any]:
    return {"done": ctx.payload["status"]}


def one(spans: list[ReceivedSpan], what: str, **attributes: Any) -> ReceivedSpan:
    """The one span named ``what`` (a prefix) with those attributes, saying what was seen."""
    found = [
        s for s in spans
        if s.name.startswith(what) and all(s.attributes.get(k) == v for k, v in attributes.items())
    ]  # fmt: skip
    seen = sorted((s.service, s.name, s.parent_id) for s in spans)
    assert len(found) == 1, f"{len(found)} spans {what} {attributes} among {seen}"
    return found[0]


def engine_span(spans: list[ReceivedSpan], event: str, **attributes: Any) -> ReceivedSpan:
    prefixed = {f"switchyard.{k}": v for k, v in attributes.items()}
    span = one(spans, f"engine.transition {event}", **prefixed)
    assert span.service == "switchyard-engine"
    assert span.kind == CONSUMER
    return span


async def test_one_trace_covers_every_hop_of_a_run_in_order(
    topics: Settings, tmp_path: Path, receiver: tuple[str, Received], traced_here: None
) -> None:
    endpoint, received = receiver
    settings = traced_settings(topics, tmp_path)
    otel = otel_env(endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    identifier = f"traced-{uuid.uuid4().hex[:8]}"
    with serving(Webhook) as (url, traceparents):
        async with (
            launched(settings, ["engine", "executor", "bridge"], tmp_path, otel) as stack,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.settings.bridge_port}") as api,
            KafkaWorker(stack.settings, work, workflows=[identifier]),
        ):
            await log_in(api)
            defined = await api.post("/v1/workflows", json=workflow(identifier, url))
            assert defined.status_code == HTTPStatus.CREATED, defined.text
            triggered = await api.post(f"/v1/workflows/{identifier}/runs",
                                       json={"inputs": {"name": "traced"}})  # fmt: skip
            assert triggered.status_code == HTTPStatus.CREATED, triggered.text
            run_id = triggered.json()["workflowRun"]["identifier"]

            async def run() -> dict[str, Any]:
                found: dict[str, Any] = (await api.get(f"/v1/workflows/runs/{run_id}")).json()[
                    "workflowRun"
                ]
                return found

            try:
                finished = await until(run, lambda r: r["status"] == "COMPLETED", within=60)
            except AssertionError as error:
                logs = "\n".join(f"{n}:\n{stack.log(n)}" for n in ("engine", "executor"))
                raise AssertionError(f"{error}\n{logs}") from None
            assert finished["result"] == "SUCCESS", finished

            def completion() -> list[ReceivedSpan]:
                return [s for s in received.snapshot()
                        if s.attributes.get("switchyard.run_id") == run_id
                        and "switchyard.run_result" in s.attributes]  # fmt: skip

            async def completed() -> list[ReceivedSpan]:
                return completion()

            await until(completed, within=30)
        # Everything is stopped: each process flushed its spans on the way out.
        tracing.shutdown_tracing()

    finished_span = completion()[0]
    spans = [s for s in received.snapshot() if s.trace_id == finished_span.trace_id]
    services = {s.service for s in spans}
    assert {"switchyard-bridge", "switchyard-engine", "switchyard-executor", WORKER} <= services

    call, work_id = node_run_id(run_id, "call"), node_run_id(run_id, "work")
    post = one(spans, "POST /v1/workflows/{workflow_id}/runs")
    assert (post.service, post.kind) == ("switchyard-bridge", SERVER)
    started = engine_span(spans, "RunTriggered", run_id=run_id)
    executor = one(spans, "worker.handle call", **{"switchyard.node_run_id": call})
    assert (executor.service, executor.attributes["switchyard.run_id"]) == (
        "switchyard-executor", run_id)  # fmt: skip
    http_call = one([s for s in spans if s.service == "switchyard-executor"], "POST")
    assert (http_call.service, http_call.kind) == ("switchyard-executor", CLIENT)
    called = engine_span(spans, "NodeRunUpdated", run_id=run_id, node_run_id=call)
    worker = one(spans, "worker.handle work", **{"switchyard.node_run_id": work_id})
    assert worker.service == WORKER
    done = engine_span(spans, "NodeRunUpdated", run_id=run_id, node_run_id=work_id)

    # Each hop is the child of the one before, across the Kafka headers and HTTP.
    chain = [post, started, executor, http_call, called, worker, done]
    parents = [(s.name, s.parent_id) for s in chain[1:]]
    assert parents == [
        (started.name, post.span_id),  # the trigger produced inside the request's span
        (executor.name, started.span_id),  # the webhook request from RunTriggered's outbox
        (http_call.name, executor.span_id),  # httpx's span inside the handler's
        (called.name, executor.span_id),  # the report produced inside the handler's span
        (worker.name, called.span_id),  # the node-run request from that transition
        (done.name, worker.span_id),
    ]
    starts = [s.start_ns for s in chain]
    assert starts == sorted(starts)
    # The webhook's receiver got the HTTP client span's context.
    assert len(traceparents) == 1
    version, trace_id, parent_id, flags = traceparents[0].split("-")
    assert (version, trace_id, parent_id) == ("00", post.trace_id, http_call.span_id)
    assert int(flags, 16) & 1  # sampled
    # The run's completion is on the last transition.
    assert done is finished_span
    assert done.attributes["switchyard.run_result"] == "SUCCESS"
    assert "run.completed" in done.events
    assert {s.attributes["switchyard.outcome"] for s in (started, called, done)} == {"applied"}


def waiting_workflow(identifier: str) -> dict[str, Any]:
    """trigger → work (KAFKA): no worker here; the test reports as Port's clients do."""
    return {
        "identifier": identifier,
        "title": "Reported without trace context",
        "nodes": [
            {"identifier": "trigger", "title": "Start", "config": {"type": "SELF_SERVE_TRIGGER"}},
            {"identifier": "work", "title": "Work", "config": {"type": "KAFKA", "payload": {}}},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}],
    }  # fmt: skip


async def test_a_report_without_trace_context_continues_the_run_s_trace(
    topics: Settings, tmp_path: Path, receiver: tuple[str, Received]
) -> None:
    """A PATCH with no ``traceparent`` (Ocean's and the execution agent's) starts a trace
    of its own at the bridge; the engine's transition stays in the run's trace, a child
    of the run's first transition, linked to the bridge's request."""
    endpoint, received = receiver
    settings, otel = traced_settings(topics, tmp_path), otel_env(endpoint)
    identifier = f"untraced-{uuid.uuid4().hex[:8]}"
    async with (
        launched(settings, ["engine", "bridge"], tmp_path, otel) as stack,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.settings.bridge_port}") as api,
    ):
        assert not tracing.enabled()  # this process sends no trace context
        await log_in(api)
        defined = await api.post("/v1/workflows", json=waiting_workflow(identifier))
        assert defined.status_code == HTTPStatus.CREATED, defined.text
        triggered = await api.post(f"/v1/workflows/{identifier}/runs", json={"inputs": {}})
        assert triggered.status_code == HTTPStatus.CREATED, triggered.text
        run_id = triggered.json()["workflowRun"]["identifier"]
        work_id = node_run_id(run_id, "work")
        done = {"status": "COMPLETED", "result": "SUCCESS", "output": {"ok": True}}

        async def report() -> int:
            return (await api.patch(f"/v1/workflows/nodes/runs/{work_id}", json=done)).status_code

        await until(report, lambda status: status == HTTPStatus.OK, within=30)

        def finished() -> list[ReceivedSpan]:
            return [s for s in received.snapshot()
                    if s.attributes.get("switchyard.run_id") == run_id
                    and "switchyard.run_result" in s.attributes]  # fmt: skip

        def bridge_spans() -> list[ReceivedSpan]:
            return [s for s in received.snapshot() if s.service == "switchyard-bridge"
                    and s.name.startswith(("POST /v1/workflows/{workflow_id}/runs",
                                           "PATCH /v1/workflows/nodes/runs/"))]  # fmt: skip

        async def completed() -> tuple[int, set[str]]:
            # The bridge exports in its own batches: wait for its two requests as well
            # as the engine's last transition before reading the trace.
            return len(finished()), {s.name.split(" ")[0] for s in bridge_spans()}

        await until(completed, lambda seen: seen[0] > 0 and seen[1] >= {"POST", "PATCH"},
                    within=30)  # fmt: skip

    spans = received.snapshot()
    post = one(spans, "POST /v1/workflows/{workflow_id}/runs")
    started = engine_span(spans, "RunTriggered", run_id=run_id)
    reported = engine_span(spans, "NodeRunUpdated", run_id=run_id, node_run_id=work_id)
    assert reported is finished()[0]
    patches = [s for s in spans if s.name.startswith("PATCH /v1/workflows/nodes/runs/")
               and s.service == "switchyard-bridge" and s.parent_id == ""]  # fmt: skip
    patch_traces = {s.trace_id for s in patches}
    # The run is one trace: the trigger's request, then each transition.
    assert started.trace_id == reported.trace_id == post.trace_id
    assert started.parent_id == post.span_id
    assert reported.parent_id == started.span_id  # the context the run keeps
    # The bridge's request is a trace of its own (no traceparent came in), linked.
    assert len(reported.links) == 1, reported.links
    linked_trace, linked_span = reported.links[0]
    assert linked_trace in patch_traces
    assert linked_trace != post.trace_id
    assert linked_span in {s.span_id for s in spans if s.trace_id == linked_trace}


async def test_a_run_an_entity_write_starts_continues_the_write_s_trace(
    topics: Settings, tmp_path: Path, receiver: tuple[str, Received]
) -> None:
    """An entity written through the API → its event → the trigger matcher's
    ``triggers.match`` span → the run's first transition, all in the write's trace."""
    endpoint, received = receiver
    settings, otel = traced_settings(topics, tmp_path), otel_env(endpoint)
    tag = uuid.uuid4().hex[:8]
    blueprint, identifier = f"service-{tag}", f"on-create-{tag}"
    on_create = {
        "identifier": identifier,
        "nodes": [
            {"identifier": "trigger", "config": {"type": "EVENT_TRIGGER", "event": {
                "type": "ENTITY_CREATED", "blueprintIdentifier": blueprint}}},
            {"identifier": "work", "config": {"type": "KAFKA", "payload": {}}},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}],
    }  # fmt: skip
    async with (
        launched(settings, ["engine", "bridge", "triggers"], tmp_path, otel) as stack,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.settings.bridge_port}") as api,
    ):
        await log_in(api)
        body = {"identifier": blueprint, "title": "Service",
                "schema": {"properties": {"tier": {"type": "string"}}}}  # fmt: skip
        assert (await api.post("/v1/blueprints", json=body)).status_code == HTTPStatus.CREATED
        defined = await api.post("/v1/workflows", json=on_create)
        assert defined.status_code == HTTPStatus.CREATED, defined.text
        entity = {"identifier": "svc-a", "properties": {"tier": "gold"}}
        wrote = await api.post(f"/v1/blueprints/{blueprint}/entities", json=entity)
        assert wrote.status_code == HTTPStatus.CREATED, wrote.text

        def started() -> list[ReceivedSpan]:
            return [s for s in received.snapshot()
                    if s.name == "engine.transition RunTriggered"
                    and str(s.attributes.get("switchyard.run_id", "")).startswith("wfr_")
                    and s.trace_id in {w.trace_id for w in writes()}]  # fmt: skip

        def writes() -> list[ReceivedSpan]:
            return [s for s in received.snapshot()
                    if s.service == "switchyard-bridge" and s.parent_id == ""
                    and s.name.startswith("POST /v1/blueprints/")]  # fmt: skip

        async def found() -> list[ReceivedSpan]:
            return started()

        try:
            [transition] = await until(found, within=30)
        except AssertionError as error:
            logs = "\n".join(f"{n}:\n{stack.log(n)}" for n in ("engine", "triggers"))
            seen = sorted((s.service, s.name, s.trace_id) for s in received.snapshot())
            raise AssertionError(f"{error}\n{seen}\n{logs}") from None

    spans = [s for s in received.snapshot() if s.trace_id == transition.trace_id]
    write = one(spans, "POST /v1/blueprints/")
    match = one(spans, "triggers.match")
    assert (match.service, match.kind) == ("switchyard-triggers", CONSUMER)
    assert match.attributes["messaging.destination.name"].endswith("entity-events")
    bridge_ids = {s.span_id for s in spans if s.service == "switchyard-bridge"}
    assert match.parent_id in bridge_ids  # the event was produced inside the write's request
    assert write.start_ns <= match.start_ns <= transition.start_ns
    assert transition.parent_id == match.span_id  # the trigger sent inside the match's span


async def test_a_run_not_sampled_exports_nothing_and_hands_its_trace_headers_on(
    topics: Settings, tmp_path: Path, receiver: tuple[str, Received]
) -> None:
    """A trigger whose incoming ``traceparent`` says "not sampled": under the
    parent-based sampler no process exports a span of that trace, and the engine hands
    the inbox record's trace headers on unchanged (its tracestate too), on the node-run
    request the trigger makes and on the one after an untraced report."""
    endpoint, received = receiver
    settings, otel = traced_settings(topics, tmp_path), otel_env(endpoint)
    identifier = f"unsampled-{uuid.uuid4().hex[:8]}"
    trace_id = uuid.uuid4().hex
    incoming = {"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-00", "tracestate": "k=v"}
    async with (
        launched(settings, ["engine", "bridge"], tmp_path, otel) as stack,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.settings.bridge_port}") as api,
    ):
        await log_in(api)
        definition = waiting_workflow(identifier)
        definition["nodes"].append(
            {"identifier": "again", "config": {"type": "KAFKA", "payload": {}}}
        )
        definition["connections"].append({"sourceIdentifier": "work", "targetIdentifier": "again"})
        defined = await api.post("/v1/workflows", json=definition)
        assert defined.status_code == HTTPStatus.CREATED, defined.text
        triggered = await api.post(f"/v1/workflows/{identifier}/runs", json={"inputs": {}},
                                   headers=incoming)  # fmt: skip
        assert triggered.status_code == HTTPStatus.CREATED, triggered.text
        run_id = triggered.json()["workflowRun"]["identifier"]
        done = {"status": "COMPLETED", "result": "SUCCESS", "output": {}}
        for node in ("work", "again"):
            patch = f"/v1/workflows/nodes/runs/{node_run_id(run_id, node)}"

            async def report(path: str = patch) -> int:
                return (await api.patch(path, json=done)).status_code

            await until(report, lambda status: status == HTTPStatus.OK, within=30)

        async def result() -> str | None:
            found = (await api.get(f"/v1/workflows/runs/{run_id}")).json()["workflowRun"]
            return found["result"]  # type: ignore[no-any-return]

        assert await until(result, lambda r: r is not None, within=30) == "SUCCESS"
        # A second run, sampled (no traceparent): each process exports its spans in
        # order, so once the bridge's and the engine's spans of it are here, any span
        # of the first run would be too.
        later = await api.post(f"/v1/workflows/{identifier}/runs", json={"inputs": {}})
        assert later.status_code == HTTPStatus.CREATED, later.text
        await until(_services_of(received, later.json()["workflowRun"]["identifier"]),
                    lambda services: services >= {"switchyard-bridge", "switchyard-engine"},
                    within=30)  # fmt: skip

    registry = TopicRegistry.from_settings(stack.settings)
    [trigger] = [r for r in await read_topic(stack.settings, registry.inbox.name)
                 if r.key == run_id.encode() and b'"RunTriggered"' in r.value]  # fmt: skip
    sent = dict(trigger.headers)
    assert sent["traceparent"].decode().split("-")[1::2] == [trace_id, "00"]  # not sampled
    assert sent["tracestate"] == b"k=v"
    requests = [r for r in await read_topic(stack.settings, registry.node_run_requests.name)
                if orjson.loads(r.value)["context"]["workflowRunId"] == run_id]  # fmt: skip
    trace_headers = [
        [(k, v) for k, v in r.headers if k in ("traceparent", "tracestate")] for r in requests
    ]
    # The trigger's request: the RunTriggered's headers, unchanged. The next one, after
    # a report without trace context: the run's kept traceparent (the run keeps no
    # tracestate), so still that trace, still not sampled.
    assert trace_headers == [
        [("traceparent", sent["traceparent"]), ("tracestate", b"k=v")],
        [("traceparent", sent["traceparent"])],
    ], trace_headers
    spans = received.snapshot()
    assert [s for s in spans if s.trace_id == trace_id] == []
    assert [s for s in spans if s.attributes.get("switchyard.run_id") == run_id] == []


def _services_of(received: Received, run_id: str) -> Callable[[], Awaitable[set[str]]]:
    """The services that exported a span of run ``run_id``'s trace."""

    async def probe() -> set[str]:
        spans = received.snapshot()
        traces = {s.trace_id for s in spans if s.attributes.get("switchyard.run_id") == run_id}
        return {s.service for s in spans if s.trace_id in traces}

    return probe
