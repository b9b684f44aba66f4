"""The claim/ack worker: Port's pull protocol for INTEGRATION_ACTION node runs.

Poll ``claim-pending`` for an installation (backing off while nothing is pending),
``ack`` each claimed node run right before running it (409: another worker has it,
skip), run the handler, PATCH its progress and result. A worker that dies between
claim and ack loses nothing: the claim comes back after its visibility timeout.
A worker that dies after the ack leaves that node run to a timeout or an operator,
as in Port (the ack is what makes a node run one worker's).

The claims are pipelined: while ``concurrency`` node runs are being acked, run and
reported, the next batch is claimed and waits in a local queue, so a handler that
finishes takes the next node run at once instead of waiting for a claim's round trip.
Node runs start in the order the claims returned them; they finish in any order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Held:
    """A claimed node run waiting for a handler, and when its claim times out
    (``time.monotonic()``)."""

    item: ClaimedNodeRun
    deadline: float


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

    At most ``concurrency`` node runs are acked, run and reported at once. Beside
    them the worker holds at most one more batch (``min(limit, concurrency)``
    claimed node runs, not acked yet), claimed while the running ones finish; a
    held node run whose visibility timeout passed before a handler was free is
    dropped unacked (it is visible to every worker again). Polls back off from
    ``min_backoff`` to ``max_backoff`` seconds while nothing is pending. Lifecycle as
    :class:`~switchyard.consumers.KafkaWorker`; a stopping worker claims no more and
    runs what it holds.

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
        self._room = asyncio.Event()  # set while the worker may claim more
        self._held = 0  # claimed node runs not done with yet (queued or running)
        self._state = "new"
        self._task: asyncio.Task[None] | None = None
        self.completed = 0  # node runs this worker acked and reported
        self.skipped = 0  # claimed node runs another worker had acked (409)
        self.expired = 0  # held node runs dropped unacked: their visibility timeout passed
        self.node = metrics_name or metrics.handler_name(handler)  # the metrics' label
        self._claim_error: str | None = "no claim yet"
        self.ops = OpsServer(ops_host, ops_port, {"claims": self._claims_check})

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"ClaimWorker.start() called when {self._state}")
        await self.ops.start()
        self._state = "started"

    async def run(self) -> None:
        """Claim and run until :meth:`stop_soon`, then run what is held and return."""
        queue: asyncio.Queue[_Held | None] = asyncio.Queue()
        runners = [
            asyncio.create_task(self._runner(queue), name=f"claim-runner-{i}")
            for i in range(self.concurrency)
        ]
        try:
            await self._claim_loop(queue)
        finally:
            for _ in runners:  # behind what is queued: each runner ends at one
                queue.put_nowait(None)
            await asyncio.gather(*runners, return_exceptions=True)

    async def _claim_loop(self, queue: asyncio.Queue[_Held | None]) -> None:
        batch = min(self.limit, self.concurrency)
        most = self.concurrency + batch  # running ones plus one batch waiting
        delay = self.min_backoff
        self._room.set()
        while not self._stopping.is_set():
            if self._held > self.concurrency:
                self._room.clear()
                await self._room.wait()
                continue
            # Timed from before the request: the bridge's timeout starts later, never sooner.
            deadline = time.monotonic() + self.visibility_timeout_ms / 1000
            claimed = await self._claim(min(self.limit, most - self._held))
            if not claimed:
                await self._pause(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            delay = self.min_backoff
            self._held += len(claimed)
            for item in claimed:
                queue.put_nowait(_Held(item, deadline))

    async def _runner(self, queue: asyncio.Queue[_Held | None]) -> None:
        while (held := await queue.get()) is not None:
            try:
                # Past its timeout another worker may have it: acking would still be
                # safe (one ack wins), but it is a race this worker needn't enter.
                if time.monotonic() >= held.deadline:
                    self.expired += 1
                else:
                    await self._one(held.item)
            except Exception:
                # A runner outlives any one node run: losing it would lose capacity.
                log.exception("node run %s: the claim worker failed", held.item.node_run_id)
            finally:
                self._held -= 1
                if self._held <= self.concurrency:
                    self._room.set()

    def stop_soon(self) -> None:
        self._stopping.set()
        self._room.set()

    async def stop(self) -> None:
        """Drain (when running in the background); idempotent."""
        self.stop_soon()
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
