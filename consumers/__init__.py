"""The worker SDK: run code for node runs that execute outside the engine.

- :class:`KafkaWorker` consumes node-run requests (KAFKA nodes) and reports each
  result as ``NodeRunUpdated`` on the inbox (or over HTTP with an :class:`HttpReporter`).
- :class:`ClaimWorker` claims, acks and runs an installation's INTEGRATION_ACTION
  node runs over the runs API (Port's claim/ack protocol).
- :class:`RunsClient` is the async client of the runs API; :class:`ApiError` its errors.
- :class:`HandlerEnvironment` runs a handler with no broker or server, for tests.

A handler is ``async def handle(ctx: WorkContext) -> Outcome | dict | None``.
``__all__`` is the public surface (pinned by ``tests/consumers/test_exports.py``);
the built-in executors (``switchyard.consumers.webhook``) are built on it.
"""

from switchyard.consumers.claim_worker import ClaimWorker, HttpReporter
from switchyard.consumers.client import ApiError, ClaimedNodeRun, RunsClient, Triggered
from switchyard.consumers.context import Handler, NodeLogger, Outcome, Reporter, WorkContext
from switchyard.consumers.kafka_worker import KafkaReporter, KafkaWorker
from switchyard.consumers.testing import HandlerEnvironment, HandlerRun

__all__ = [
    "ApiError",
    "ClaimWorker",
    "ClaimedNodeRun",
    "Handler",
    "HandlerEnvironment",
    "HandlerRun",
    "HttpReporter",
    "KafkaReporter",
    "KafkaWorker",
    "NodeLogger",
    "Outcome",
    "Reporter",
    "RunsClient",
    "Triggered",
    "WorkContext",
]
