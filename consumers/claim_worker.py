"""The claim/ack worker: Port's pull protocol for INTEGRATION_ACTION node runs.

Poll ``claim-pending`` for an installation (backing off while nothing is pending),
``ack`` each claimed node run right before running it (409: another worker has it,
skip), run the handler, PATCH its progress and result. A worker that dies between
claim and ack loses nothing: the claim comes back after its visibility timeout.
A worker that dies after the ack leaves that node run to a timeout or an operator,
as in Port (the ack is what makes a node run one worker's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

import httpx

from switchyard.consumers import metrics
from switchyard.consumers.client import ApiError, ClaimedNodeRun, RunsClient
from switchyard.consumers.context import Handler, WorkContext, utc_now
from switchyard.consumers.running import run_handler
from switchyard.schemas import NodeRunUpdated
from switchyard.topics.telemetry.log_context import log_context
from switchyard.topics.telemetry.ops import Check, OpsServer

log = logging.getLogger("switchyard.worker")


class HttpReporter:
    """Reports updates with ``PATCH /v1/workflows/nodes/runs/{id}``."""

    def __init__(self, client: RunsClient) -> None:
        self.client = client

    async def report(self, update: NodeRunUpdated) -> None:
        await self.client.update_node_run(
            update.node_run_id, status=update.status, result=update.result,
            output=update.output, logs=update.logs, links=update.links,
            external_run_id=update.external_run_id,
        )  # fmt: skip


class ClaimWorker:
    """Claims, acks and runs ``installation_id``'s pending node runs with ``handler``.

    At most ``concurrency`` handlers run at once; a claim asks for no more than
    there is room for, so nothing claimed waits past its visibility timeout in a
    local queue. Polls back off from ``min_backoff`` to ``max_backoff`` seconds
    while nothing is pending. Lifecycle as :class:`~switchyard.consumers.KafkaWorker`.

    ``metrics_name`` is the ``node`` label of its metrics (default: the handler's
    name). ``ops_port`` (0: off) serves ``/metrics``, ``/healthz`` and ``/readyz`` on
    ``ops_host``; its check ``claims`` passes while the last claim was answered.
    """

    def __init__(
        self,
        client: RunsClient,
        installation_id: str,
        handler: Handler,
        *,
        limit: int = 10,
        visibility_timeout_ms: int = 60_000,
        concurrency: int = 10,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
        clock: Callable[[], datetime] = utc_now,
        metrics_name: str | None = None,
        ops_port: int = 0,
        ops_host: str = "127.0.0.1",
    ) -> None:
        self.client = client
        self.installation_id = installation_id
        self.handler = handler
        self.limit = limit
        self.visibility_timeout_ms = visibility_timeout_ms
        self.concurrency = concurrency
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.clock = clock
        self.reporter = HttpReporter(client)
        self._stopping = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._state = "new"
        self._task: asyncio.Task[None] | None = None
        self.completed = 0  # node runs this worker acked and reported
        self.skipped = 0  # claimed node runs another worker had acked (409)
        self.node = metrics_name or metrics.handler_name(handler)  # the metrics' label
        self._claim_error: str | None = "no claim yet"
        self.ops = OpsServer(ops_host, ops_port, {"claims": self._claims_check})

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"ClaimWorker.start() called when {self._state}")
        await self.ops.start()
        self._state = "started"

    async def run(self) -> None:
        """Claim and run until :meth:`stop_soon`, then wait for in-flight handlers."""
        delay = self.min_backoff
        try:
            while not self._stopping.is_set():
                room = self.concurrency - len(self._inflight)
                if room <= 0:
                    await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                claimed = await self._claim(min(room, self.limit))
                if not claimed:
                    await self._pause(delay)
                    delay = min(delay * 2, self.max_backoff)
                    continue
                delay = self.min_backoff
                for item in claimed:
                    task = asyncio.create_task(self._one(item), name=item.identifier)
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
        finally:
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)

    def stop_soon(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        """Drain (when running in the background); idempotent."""
        self._stopping.set()
        if self._task is not None:
            task, self._task = self._task, None
            await task
        await self.ops.stop()
        self._state = "stopped"

    async def __aenter__(self) -> ClaimWorker:
        await self.start()
        self._task = asyncio.create_task(self.run(), name="claim-worker")
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _pause(self, delay: float) -> None:
        # Wakes early on stop_soon(): a stopping worker never sits out a backoff.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    async def _claim(self, limit: int) -> list[ClaimedNodeRun]:
        try:
            claimed = await self.client.claim(
                self.installation_id, limit=limit, visibility_timeout_ms=self.visibility_timeout_ms
            )
        except (ApiError, httpx.HTTPError) as error:
            # The API is down or refuses us: retry with the backoff, never die.
            log.warning("claim for %s failed: %s", self.installation_id, error)
            self._claim_error = f"{type(error).__name__}: {error}"
            return []
        self._claim_error = None
        return claimed

    async def _claims_check(self) -> Check:
        if self._claim_error is not None:
            return Check.failed(f"claims for {self.installation_id}: {self._claim_error}")
        return Check.passed(f"the last claim for {self.installation_id} was answered")

    async def _one(self, item: ClaimedNodeRun) -> None:
        with log_context(run_id=item.run_id, node_run_id=item.node_run_id,
                         event_type="ClaimedNodeRun"):  # fmt: skip
            await self._handle(item)

    async def _handle(self, item: ClaimedNodeRun) -> None:
        try:
            if not await self.client.ack(item.node_run_id):
                self.skipped += 1
                return
            reporter = metrics.counted(self.reporter, self.node)
            ctx = WorkContext(
                run_id=item.run_id,
                node_run_id=item.node_run_id,
                node_identifier=item.node_identifier,
                workflow_identifier=None,
                payload=item.config.get("integrationActionExecutionProperties", {}),
                reporter=reporter,
                clock=self.clock,
                config=item.config,
            )
            update = await run_handler(self.handler, ctx, node=self.node)
            if update is not None:
                await reporter.report(update)
            self.completed += 1
        except (ApiError, httpx.HTTPError) as error:
            # 404 on ack: the node run ended meanwhile (a cancelled run); 409 on PATCH:
            # it is frozen. Either way there is nothing left for this worker to do.
            log.warning("node run %s: %s", item.node_run_id, error)
