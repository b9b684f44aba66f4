"""The built-in WEBHOOK executor: makes the HTTP call and reports the node run's result.

Synchronized nodes report ``{response: {status, data}}`` (non-2xx or a timeout fail
the node; ``onTimeout: continue`` completes it with ``{timeout: true}``). Nodes with
``synchronized: false`` get ``{payload, context}`` POSTed and wait for the receiver's
PATCH; only a failed delivery is reported (as FAILED).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import orjson
from aiokafka import ConsumerRecord

from switchyard.consumers.loop import ConsumerLoop
from switchyard.schemas import (
    DecodeError,
    LogEntry,
    NodeRunUpdated,
    WebhookRequest,
    decode,
    encode,
)
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry

log = logging.getLogger("switchyard.executor")

DEFAULT_TIMEOUT_SECONDS = 30.0
_MAX_LOGGED_BODY = 4096


def _body_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _clip(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= _MAX_LOGGED_BODY else text[:_MAX_LOGGED_BODY] + "…"


class WebhookExecutor:
    """Turns one :class:`WebhookRequest` into one :class:`NodeRunUpdated` (or none)."""

    def __init__(self, http: httpx.AsyncClient, clock: Callable[[], datetime]) -> None:
        self.http = http
        self.clock = clock

    async def execute(self, request: WebhookRequest) -> NodeRunUpdated | None:
        logs: list[LogEntry] = []
        body = request.body if request.synchronized else {
            "payload": request.body,
            "context": request.context.model_dump(mode="json", by_alias=True),
        }  # fmt: skip
        if request.verbose:
            logs.append(self._log("INFO", f"{request.method} {request.url} {_clip(body)}"))
        timeout = request.timeout_seconds or DEFAULT_TIMEOUT_SECONDS
        try:
            response = await self.http.request(
                request.method, request.url, headers=request.headers,
                json=None if request.method == "GET" else body, timeout=timeout,
            )  # fmt: skip
        except httpx.TimeoutException:
            return self._timed_out(request, timeout, logs)
        except httpx.HTTPError as error:
            logs.append(self._log("ERROR", f"request to {request.url} failed: {error!r}"))
            return self._report(request, "FAILED", {"error": {"message": str(error)}}, logs)
        data = _body_of(response)
        if request.verbose:
            logs.append(self._log("INFO", f"response {response.status_code} {_clip(data)}"))
        output = {"response": {"status": response.status_code, "data": data}}
        if not response.is_success:
            logs.append(self._log("ERROR", f"{request.url} answered {response.status_code}"))
            return self._report(request, "FAILED", output, logs)
        if not request.synchronized:
            # Delivered; the receiver completes the node with a PATCH.
            return self._progress(request, logs) if logs else None
        return self._report(request, "SUCCESS", output, logs)

    def _timed_out(
        self, request: WebhookRequest, timeout: float, logs: list[LogEntry]
    ) -> NodeRunUpdated:
        message = f"no answer from {request.url} within {timeout:g} s"
        if request.on_timeout == "continue":
            logs.append(self._log("WARN", message + "; continuing (onTimeout: continue)"))
            return self._report(request, "SUCCESS", {"timeout": True}, logs)
        logs.append(self._log("ERROR", message))
        return self._report(request, "FAILED", {"error": {"message": message}}, logs)

    def _log(self, level: str, message: str) -> LogEntry:
        return LogEntry.model_validate(
            {"logLevel": level, "log": message, "createdAt": self.clock()}
        )

    def _report(
        self, request: WebhookRequest, result: str, output: dict[str, Any], logs: list[LogEntry]
    ) -> NodeRunUpdated:
        return NodeRunUpdated.model_validate(
            {
                "runId": request.context.workflow_run_id,
                "nodeRunId": request.context.node_run_id,
                "status": "COMPLETED",
                "result": result,
                "output": output,
                "logs": logs,
                "sentAt": self.clock(),
            }
        )

    def _progress(self, request: WebhookRequest, logs: list[LogEntry]) -> NodeRunUpdated:
        return NodeRunUpdated.model_validate(
            {
                "runId": request.context.workflow_run_id,
                "nodeRunId": request.context.node_run_id,
                "status": "IN_PROGRESS",
                "logs": logs,
                "sentAt": self.clock(),
            }
        )


class WebhookService:
    """The executor process: webhook-requests topic in, NodeRunUpdated on the inbox out."""

    def __init__(
        self, settings: Settings, producer: EventProducer, http: httpx.AsyncClient,
        clock: Callable[[], datetime],
    ) -> None:  # fmt: skip
        registry = TopicRegistry.from_settings(settings)
        self.inbox = registry.inbox.name
        self.producer = producer
        self.executor = WebhookExecutor(http, clock)
        self.loop = ConsumerLoop(
            bootstrap=settings.kafka_bootstrap_servers,
            topic=registry.webhook_requests.name,
            group=f"{settings.engine_group}-webhook-executor",
            handler=self._handle,
        )

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            request = decode(record.value or b"", WebhookRequest)
        except DecodeError as error:
            log.error("undecodable webhook request at %s: %s", record.offset, error.reason)
            return
        update = await self.executor.execute(request)
        if update is not None:
            await self.producer.send_and_wait(self.inbox, update.run_id, encode(update))
