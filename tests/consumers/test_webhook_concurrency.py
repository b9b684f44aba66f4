"""The webhook executor's calls against a local HTTP/1.1 server: calls of one batch
overlap, a call in hand does not hold up the records behind it (nor is anything past
it committed), and the pool keeps its connections alive for the next calls.

Receivers hold requests on thread barriers and events with timeouts, so a sequential
executor fails (a 500 answer, a report that never comes) instead of hanging.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from switchyard.consumers.context import NodeLogger
from switchyard.consumers.webhook import WebhookExecutor, WebhookService, pooled_client
from switchyard.schemas import WebhookRequest, encode
from switchyard.schemas.settings import Settings
from switchyard.topics.connection import kafka_options
from switchyard.topics.partitioning import partition_of
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from tests.helpers import LocalHandler, until
from tests.integration.engine_support import consume, new_run_id

HOLD_SECONDS = 15.0  # how long a receiver waits for the overlap it expects


class _Receiver(LocalHandler):
    """HTTP/1.1 keep-alive; records each call's path and client port. ``/together``
    waits on ``gates["barrier"]``, ``/hold`` on ``gates["release"]``; 500 when they
    time out."""

    protocol_version = "HTTP/1.1"
    gates: dict[str, Any]

    def do_POST(self) -> None:
        self.body()
        self.record({"path": self.path, "port": self.client_address[1]})
        held = True
        if self.path == "/together":
            try:
                self.gates["barrier"].wait()
            except threading.BrokenBarrierError:
                held = False
        elif self.path == "/hold":
            held = self.gates["release"].wait(HOLD_SECONDS)
        self.answer(200 if held else 500, {"path": self.path})


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # a burst's connections all at once (the default is 5)


@contextmanager
def _serving(handler: type[_Receiver]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """:func:`tests.helpers.serving` with room for a burst of connections."""
    server = _Server(("127.0.0.1", 0), handler)
    records: list[dict[str, Any]] = []
    server.records = records  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", records
    finally:
        server.shutdown()
        server.server_close()


def _receiver(**gates: Any) -> tuple[type[_Receiver], dict[str, Any]]:
    """A handler class of the test's own, and the gates its calls wait on."""
    return type("Receiver", (_Receiver,), {"gates": gates}), gates


def _request(url: str, run_id: str) -> WebhookRequest:
    node_run = f"wfnr_{uuid.uuid4().hex[:16]}"
    return WebhookRequest.model_validate({
        "url": url, "method": "POST", "body": {"n": 1},
        "context": {"workflowIdentifier": "wf-concurrency", "workflowRunId": run_id,
                    "nodeRunId": node_run, "nodeIdentifier": "call", "runId": node_run},
    })  # fmt: skip


@pytest.fixture
def private(topics: Settings) -> Settings:
    """A consumer group of the test's own (it starts at the topic's beginning)."""
    return topics.model_copy(update={"engine_group": f"conc-{uuid.uuid4().hex[:8]}"})


@pytest.fixture
async def service(private: Settings, producer: EventProducer) -> AsyncIterator[WebhookService]:
    async with pooled_client(private) as http:
        yield WebhookService(private, producer, http, lambda: datetime.now(UTC))


async def _send(settings: Settings, producer: EventProducer, request: WebhookRequest) -> int:
    """Produce ``request``; its offset on the webhook-requests topic."""
    topic = TopicRegistry.from_settings(settings).webhook_requests.name
    metadata: Any = await (await producer.send(topic, request.run_id, encode(request)))
    return int(metadata.offset)


async def _reports(
    settings: Settings, requests: list[WebhookRequest], within: float = HOLD_SECONDS + 10
) -> dict[str, Any]:
    """The inbox report of each request, by node-run id."""
    wanted = {r.context.node_run_id for r in requests}

    def mine(record: Any) -> bool:
        return orjson.loads(record.value).get("nodeRunId") in wanted

    inbox = TopicRegistry.from_settings(settings).inbox.name
    found = await consume(settings, inbox, len(wanted), mine, within=within)
    return {body["nodeRunId"]: body for body in (orjson.loads(r.value) for r in found)}


@pytest.mark.integration
async def test_the_calls_of_one_batch_overlap(
    private: Settings, producer: EventProducer, service: WebhookService
) -> None:
    count = 6
    handler, _ = _receiver(barrier=threading.Barrier(count, timeout=HOLD_SECONDS))
    with _serving(handler) as (url, seen):
        run_id = new_run_id()  # one key: one partition, one batch
        requests = [_request(f"{url}/together", run_id) for _ in range(count)]
        for request in requests:
            await _send(private, producer, request)
        async with service.loop:
            reports = await _reports(private, requests)
    # Each call waited for all of them to be in flight: sequential calls get 500s.
    assert [r["result"] for r in reports.values()] == ["SUCCESS"] * count
    assert len(seen) == count


@pytest.mark.integration
async def test_a_call_in_hand_holds_up_neither_later_records_nor_is_passed_by_a_commit(
    private: Settings, producer: EventProducer, service: WebhookService
) -> None:
    handler, gates = _receiver(release=threading.Event())
    with _serving(handler) as (url, seen):
        run_id = new_run_id()  # both on one partition
        held, behind = _request(f"{url}/hold", run_id), _request(f"{url}/hook", run_id)
        async with service.loop:
            held_at = await _send(private, producer, held)

            async def calls() -> int:
                return len(seen)

            await until(calls, lambda n: n >= 1, within=HOLD_SECONDS)
            behind_at = await _send(private, producer, behind)
            # Fetched and reported while the first call is still held (a loop that
            # waits for its batch would fetch it only after the hold times out).
            [report] = (await _reports(private, [behind], within=HOLD_SECONDS / 2)).values()
            assert report["result"] == "SUCCESS"
            count = await service.producer.partition_count(service.loop.topic)
            tp = TopicPartition(service.loop.topic, partition_of(run_id.encode(), count))
            committed = await service.loop.consumer.committed(tp)
            assert committed is None or committed <= held_at
            gates["release"].set()
            [first] = (await _reports(private, [held])).values()
            assert first["result"] == "SUCCESS"
        # Drained on exit: both batches committed, in order.
        assert await _committed(private, tp) == behind_at + 1


async def _committed(settings: Settings, tp: TopicPartition) -> int | None:
    group = f"{settings.engine_group}-webhook-executor"
    consumer = AIOKafkaConsumer(
        **kafka_options(settings), group_id=group, enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    try:
        committed: int | None = await consumer.committed(tp)
        return committed
    finally:
        await consumer.stop()


async def test_the_pool_keeps_a_burst_of_connections_alive_for_the_next(topics: Settings) -> None:
    """Two bursts of 25 concurrent calls: the second reuses the first's 25 connections
    (httpx's default pool keeps 20 and would open 5 new ones)."""
    burst = 25
    handler, gates = _receiver()
    with _serving(handler) as (url, seen):
        async with pooled_client(topics) as http:
            executor = WebhookExecutor(http)
            for _ in range(2):
                gates["barrier"] = threading.Barrier(burst, timeout=HOLD_SECONDS)
                requests = [_request(f"{url}/together", new_run_id()) for _ in range(burst)]
                outcomes = await asyncio.gather(
                    *(executor.execute(r, NodeLogger(lambda: datetime.now(UTC), "n"))
                      for r in requests)
                )  # fmt: skip
                assert [o.result for o in outcomes] == ["SUCCESS"] * burst
    assert len(seen) == 2 * burst
    assert len({call["port"] for call in seen}) == burst


async def test_calls_one_after_another_share_one_connection(topics: Settings) -> None:
    with _serving(_receiver()[0]) as (url, seen):
        async with pooled_client(topics) as http:
            executor = WebhookExecutor(http)
            for _ in range(5):
                request = _request(f"{url}/hook", new_run_id())
                await executor.execute(request, NodeLogger(lambda: datetime.now(UTC), "n"))
    assert len(seen) == 5
    assert len({call["port"] for call in seen}) == 1
