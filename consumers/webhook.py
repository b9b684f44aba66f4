"""The built-in WEBHOOK executor: makes the HTTP call and reports the node run's result.

It is a handler of the worker SDK (:class:`~switchyard.consumers.KafkaWorker`) reading
the webhook-requests topic, so it reports, deduplicates and shuts down exactly as
a user's worker does. Synchronized nodes report ``{response: {status, data}}``
(non-2xx or a timeout fail the node; ``onTimeout: continue`` completes it with
``{timeout: true}``). Nodes with ``synchronized: false`` get ``{payload, context}``
POSTed and wait for the receiver's PATCH; only a failed delivery is reported (FAILED).

A non-2xx answer is reported FAILED with ``{response: {status, data}, error: {message}}``:
``response.status`` is what a retry policy's ``retryOn`` HTTP statuses are matched
against. Every call carries ``Idempotency-Key: <node-run id>`` (unless the node's own
headers set one), so a receiver can tell a repeated delivery from a new attempt,
which is a node run of its own. An INPUT node's notifications come this way too
(``notification`` set): :mod:`switchyard.consumers.notifications` sends them and
only logs the outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import httpx
import orjson

from switchyard.consumers import metrics
from switchyard.consumers.context import NodeLogger, Outcome, WorkContext
from switchyard.consumers.egress import (
    EgressPolicy,
    EgressRefused,
    ResponseTooLarge,
    install_egress_guard,
)
from switchyard.consumers.kafka_worker import KafkaWorker
from switchyard.consumers.notifications import SmtpSettings, deliver
from switchyard.schemas import WebhookRequest
from switchyard.schemas.masking import mask_secrets
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry

DEFAULT_TIMEOUT_SECONDS = 30.0
_KEEPALIVE_SECONDS = 30.0
_MAX_LOGGED_BODY = 4096
IDEMPOTENCY_HEADER = "Idempotency-Key"


def pooled_client(settings: Settings) -> httpx.AsyncClient:
    """The executor process's one HTTP client, shared by its webhook and AI calls.

    HTTP/1.1 connections are kept alive and reused per host: as many as
    ``webhook_concurrency`` calls may be in flight, so the pool keeps that many idle
    connections (httpx keeps 20 by default: a burst past it would close the rest and
    open new ones for the next). The total is not capped here: each worker's
    concurrency already bounds its calls, and a cap shared by the webhook and AI
    executors would let one's calls queue behind the other's. Not larger: httpcore
    checks every pooled connection (a poll each) when it places a call, so the
    executor's CPU per call grew with the setting (measured on the ``webhook``
    workload at 60 runs/s: 3.9 ms at 16, 4.4 at 32, 5.9 at 64).
    """
    limits = httpx.Limits(
        max_connections=None,
        max_keepalive_connections=settings.webhook_concurrency,
        keepalive_expiry=_KEEPALIVE_SECONDS,
    )
    return httpx.AsyncClient(limits=limits)


def _body_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _failure(error: httpx.HTTPError) -> str:
    """The ``outcome`` label of a call that got no answer it could use."""
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    if isinstance(error, EgressRefused):
        return "refused"
    if isinstance(error, ResponseTooLarge):
        return "too_large"
    return "error"


def headers_for(request: WebhookRequest) -> dict[str, str]:
    """The node's headers, plus ``Idempotency-Key: <node-run id>`` when they have none
    (header names are case-insensitive: the node's own ``idempotency-key`` wins)."""
    headers = dict(request.headers)
    if not any(name.lower() == IDEMPOTENCY_HEADER.lower() for name in headers):
        headers[IDEMPOTENCY_HEADER] = request.context.node_run_id
    return headers


def _clip(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= _MAX_LOGGED_BODY else text[:_MAX_LOGGED_BODY] + "…"


class _MaskedLog:
    """The node logger, with the server's secrets masked in every line.

    A rendered webhook carries secrets (headers, URL, body); its log lines go to the
    node run and to this process's log, and neither may show them.
    """

    def __init__(self, log: NodeLogger, secrets: Mapping[str, str]) -> None:
        self._log = log
        self._secrets = secrets

    def info(self, message: str) -> None:
        self._log.info(mask_secrets(message, self._secrets))

    def warn(self, message: str) -> None:
        self._log.warn(mask_secrets(message, self._secrets))

    def error(self, message: str) -> None:
        self._log.error(mask_secrets(message, self._secrets))


class WebhookExecutor:
    """The handler: one :class:`WebhookRequest` (the context's payload) to one outcome."""

    def __init__(
        self, http: httpx.AsyncClient, secrets: Mapping[str, str] | None = None,
        smtp: SmtpSettings | None = None,
    ) -> None:  # fmt: skip
        self.http = http
        self.secrets = dict(secrets or {})
        self.smtp = smtp or SmtpSettings()

    async def __call__(self, ctx: WorkContext) -> Outcome:
        request: WebhookRequest = ctx.payload
        return await self.execute(request, _MaskedLog(ctx.log, self.secrets))

    async def send(self, request: WebhookRequest, body: Any, seconds: float) -> httpx.Response:
        """The one outgoing HTTP call of a WEBHOOK node (guards on the URL go here),
        counted and timed by its outcome (``switchyard_webhook_calls_total``)."""
        started = time.perf_counter()
        try:
            response = await self.http.request(
                request.method, request.url, headers=headers_for(request),
                json=None if request.method == "GET" else body, timeout=seconds,
            )  # fmt: skip
        except httpx.HTTPError as error:
            metrics.webhook_called(None, _failure(error), time.perf_counter() - started)
            raise
        outcome = "success" if response.is_success else "failed"
        metrics.webhook_called(response.status_code, outcome, time.perf_counter() - started)
        return response

    async def execute(self, request: WebhookRequest, log: NodeLogger | _MaskedLog) -> Outcome:
        if request.notification is not None:
            await deliver(request, self, self.smtp, log)
            return Outcome.in_progress()  # reported only for its log line
        body = request.body if request.synchronized else {
            "payload": request.body,
            "context": request.context.model_dump(mode="json", by_alias=True),
        }  # fmt: skip
        if request.verbose:
            log.info(f"{request.method} {request.url} {_clip(body)}")
        timeout = request.timeout_seconds or DEFAULT_TIMEOUT_SECONDS
        try:
            response = await self.send(request, body, timeout)
        except httpx.TimeoutException:
            return self._timed_out(request, timeout, log)
        except httpx.HTTPError as error:
            log.error(f"request to {request.url} failed: {error!r}")
            return Outcome.failed({"error": {"message": str(error)}})
        data = _body_of(response)
        if request.verbose:
            log.info(f"response {response.status_code} {_clip(data)}")
        output: dict[str, Any] = {"response": {"status": response.status_code, "data": data}}
        if not response.is_success:
            message = f"{request.url} answered {response.status_code}"
            log.error(message)
            return Outcome.failed({**output, "error": {"message": message}})
        if not request.synchronized:
            # Delivered; the receiver completes the node with a PATCH. The worker
            # sends the IN_PROGRESS update only when it carries log lines.
            return Outcome.in_progress()
        return Outcome.success(output)

    @staticmethod
    def _timed_out(
        request: WebhookRequest, timeout: float, log: NodeLogger | _MaskedLog
    ) -> Outcome:
        message = f"no answer from {request.url} within {timeout:g} s"
        if request.on_timeout == "continue":
            log.warn(message + "; continuing (onTimeout: continue)")
            return Outcome.success({"timeout": True})
        log.error(message)
        # ``timeout: true`` tells a retry policy's "timeout" from other failures.
        return Outcome.failed({"timeout": True, "error": {"message": message}})


class WebhookService:
    """The executor process: webhook-requests topic in, NodeRunUpdated on the inbox out.

    ``loop`` is the SDK's Kafka worker (``start``, ``run``, ``stop_soon``, ``stop``),
    making up to ``webhook_concurrency`` calls at once; ``http`` is best
    :func:`pooled_client` (sized for that many).
    """

    def __init__(
        self, settings: Settings, producer: EventProducer, http: httpx.AsyncClient,
        clock: Callable[[], datetime],
    ) -> None:  # fmt: skip
        registry = TopicRegistry.from_settings(settings)
        self.inbox = registry.inbox.name
        self.producer = producer
        install_egress_guard(http, EgressPolicy.from_settings(settings))
        smtp = SmtpSettings.from_settings(settings)
        self.executor = WebhookExecutor(http, settings.secrets, smtp)
        self.loop: KafkaWorker[WebhookRequest] = KafkaWorker(
            settings,
            self.executor,
            group=f"{settings.engine_group}-webhook-executor",
            instance_id=settings.executor_instance_id,
            # Calls run concurrently, across partitions and within one partition's
            # batch: one slow receiver holds up only its own node runs.
            concurrency=settings.webhook_concurrency,
            max_records=200,
            producer=producer,
            clock=clock,
            topic=registry.webhook_requests.name,
            message_type=WebhookRequest,
            metrics_name="webhook",
        )
