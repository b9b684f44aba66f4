"""The worker SDK's metrics, and the built-in executors' (they run on it).

* ``switchyard_worker_handler_seconds{node,result}``: one handler call; ``result`` is
  ``success`` or ``failed`` (the outcome the handler returned), ``in_progress`` (it
  left the node run open) or ``error`` (it raised: reported FAILED);
* ``switchyard_worker_handler_errors_total{node,error}``: handlers that raised, by
  exception class name;
* ``switchyard_worker_reports_total{node,status}``: updates sent (``completed``,
  ``in_progress``: progress reports included) and reports that failed (``error``:
  the broker or the API refused);
* ``switchyard_webhook_calls_total{status_class,outcome}``: a WEBHOOK node's HTTP
  calls (notifications included): ``status_class`` ``2xx``…``5xx`` or ``none`` (no
  answer), ``outcome`` ``success``, ``failed`` (non-2xx), ``timeout``, ``refused``
  (the egress guard), ``too_large`` (the response) or ``error`` (the connection);
* ``switchyard_webhook_call_seconds``: one such call.

``node`` is bounded by the worker's configuration, never by what arrives: the
worker's ``metrics_name`` when given (the built-in executors: ``webhook``, ``ai``,
``upsert_entity``), else the request's node identifier when the worker keeps only
some (``node_identifiers``), else the handler's name.

A worker serves these on ``/metrics`` only when asked (``ops_port=``, or
``switchyard worker run --metrics-port``); every recording call returns at once
when metrics are off (``SWITCHYARD_METRICS_ENABLED=false``).
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer
from prometheus_client import Counter, Histogram

from switchyard.consumers.context import Outcome, Reporter
from switchyard.schemas import NodeRunUpdated
from switchyard.topics.producer import EventProducer

# The processes' own checks, so that a worker's /readyz reads as the executor's does.
from switchyard.topics.telemetry.checks import consumer_check, kafka_check
from switchyard.topics.telemetry.metrics import DURATION_BUCKETS, enabled
from switchyard.topics.telemetry.ops import CheckFn

HANDLER_SECONDS = Histogram(
    "switchyard_worker_handler_seconds",
    "One handler call of a worker, by node and result (success, failed, in_progress, error).",
    ["node", "result"],
    buckets=DURATION_BUCKETS,
)
HANDLER_ERRORS = Counter(
    "switchyard_worker_handler_errors_total",
    "Handler calls that raised, by node and exception class.",
    ["node", "error"],
)
REPORTS = Counter(
    "switchyard_worker_reports_total",
    "Node-run updates a worker sent (completed, in_progress) or failed to send (error).",
    ["node", "status"],
)
WEBHOOK_CALLS = Counter(
    "switchyard_webhook_calls_total",
    "HTTP calls of WEBHOOK nodes by status class (2xx..5xx, none) and outcome.",
    ["status_class", "outcome"],
)
WEBHOOK_CALL_SECONDS = Histogram(
    "switchyard_webhook_call_seconds", "One HTTP call of a WEBHOOK node.", buckets=DURATION_BUCKETS
)

_RESULTS = {"SUCCESS": "success", "FAILED": "failed"}
_STATUSES = {"COMPLETED": "completed", "IN_PROGRESS": "in_progress"}
# Children by their labels: .labels() takes a lock and validates; a dict lookup is
# all a node run needs once its combination was seen.
_handler_children: dict[tuple[str, str], Histogram] = {}
_report_children: dict[tuple[str, str], Counter] = {}


def handler_name(handler: Any) -> str:
    """A handler's name as a label: a function's name, else its class's."""
    name = getattr(handler, "__name__", None)
    return name if isinstance(name, str) else type(handler).__name__


def result_of(outcome: Outcome) -> str:
    if outcome.status == "IN_PROGRESS":
        return "in_progress"
    return _RESULTS.get(outcome.result or "", "failed")


def handled(node: str, result: str, seconds: float, error: BaseException | None = None) -> None:
    """One handler call: its duration by result, and the exception's class if it raised."""
    if not enabled():
        return
    child = _handler_children.get((node, result))
    if child is None:
        child = _handler_children[(node, result)] = HANDLER_SECONDS.labels(node, result)
    child.observe(seconds)
    if error is not None:
        HANDLER_ERRORS.labels(node, type(error).__name__).inc()


def reported(node: str, status: str) -> None:
    if not enabled():
        return
    child = _report_children.get((node, status))
    if child is None:
        child = _report_children[(node, status)] = REPORTS.labels(node, status)
    child.inc()


class CountedReporter:
    """A reporter that counts what it sends under ``node`` (see :func:`counted`)."""

    __slots__ = ("node", "reporter")

    def __init__(self, reporter: Reporter, node: str) -> None:
        self.reporter = reporter
        self.node = node

    async def report(self, update: NodeRunUpdated) -> None:
        try:
            await self.reporter.report(update)
        except Exception:
            reported(self.node, "error")
            raise
        reported(self.node, _STATUSES.get(update.status, update.status.lower()))


def counted(reporter: Reporter, node: str) -> Reporter:
    """``reporter``, counting each report under ``node``; itself when metrics are off."""
    return CountedReporter(reporter, node) if enabled() else reporter


def webhook_called(status: int | None, outcome: str, seconds: float) -> None:
    if not enabled():
        return
    status_class = f"{status // 100}xx" if status else "none"
    WEBHOOK_CALLS.labels(status_class, outcome).inc()
    WEBHOOK_CALL_SECONDS.observe(seconds)


def kafka_worker_checks(
    consumer: AIOKafkaConsumer, topic: str, producer: EventProducer | None
) -> dict[str, CheckFn]:
    """A Kafka worker's readiness: its group member holds partitions of ``topic`` (or
    stands by in a group with more members than partitions), and, when it reports on
    the inbox, a broker answers its producer."""
    checks = {"consumer": consumer_check([(consumer, topic)])}
    if producer is not None:
        checks["kafka"] = kafka_check(producer)
    return checks
