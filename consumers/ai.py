"""The built-in AI executor: ``AI`` and ``AI_AGENT`` nodes through an OpenAI-compatible
chat-completions endpoint (``SWITCHYARD_AI_BASE_URL``).

A handler of the worker SDK on the ai-requests topic, like the webhook executor. One
call per node run: ``POST <base>/chat/completions`` with the system and user prompts
(and, with ``outputSchema``, a JSON-schema response format), bounded by the node's
``timeoutSeconds`` or ``SWITCHYARD_AI_TIMEOUT_S``. The node completes with
``{response: <the message's text>, invocationIdentifier: <the completion's id>}``
(Port's shape: with ``outputSchema`` the response is a JSON string, for
``fromjson``). A non-2xx answer fails it with ``response.status`` (what a retry's
``retryOn`` matches), a timeout with ``timeout: true``. The endpoint is the
operator's, so the webhook egress guard does not apply; the key never reaches a log.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from switchyard.consumers.context import NodeLogger, Outcome, WorkContext
from switchyard.consumers.kafka_worker import KafkaWorker
from switchyard.schemas import AiRequest
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry


class AiExecutor:
    """The handler: one :class:`AiRequest` (the context's payload) to one outcome."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self.http = http
        self.base_url = (settings.ai_base_url or "").rstrip("/")
        self.api_key = settings.ai_api_key.get_secret_value() if settings.ai_api_key else None
        self.model = settings.ai_model
        self.timeout_s = settings.ai_timeout_s

    async def __call__(self, ctx: WorkContext) -> Outcome:
        request: AiRequest = ctx.payload
        return await self.execute(request, ctx.log)

    def body(self, request: AiRequest) -> dict[str, Any]:
        messages = [{"role": "user", "content": request.user_prompt}]
        if request.system_prompt:
            messages.insert(0, {"role": "system", "content": request.system_prompt})
        body: dict[str, Any] = {"model": request.model or self.model, "messages": messages}
        if request.output_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": request.output_schema},
            }
        return body

    async def execute(self, request: AiRequest, log: NodeLogger) -> Outcome:
        if not self.base_url:
            message = "SWITCHYARD_AI_BASE_URL is not set on the executor"
            log.error(message)
            return Outcome.failed({"error": {"message": message}})
        seconds = min(request.timeout_seconds or self.timeout_s, self.timeout_s)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        url = f"{self.base_url}/chat/completions"
        try:
            response = await self.http.post(
                url, json=self.body(request), headers=headers, timeout=seconds
            )
        except httpx.TimeoutException:
            message = f"no completion from {url} within {seconds:g} s"
            log.error(message)
            return Outcome.failed({"timeout": True, "error": {"message": message}})
        except httpx.HTTPError as error:
            log.error(f"request to {url} failed: {error!r}")
            return Outcome.failed({"error": {"message": str(error)}})
        return self._outcome(response, url, log)

    @staticmethod
    def _outcome(response: httpx.Response, url: str, log: NodeLogger) -> Outcome:
        try:
            data = response.json()
        except ValueError:
            data = response.text
        if not response.is_success:
            message = f"{url} answered {response.status_code}"
            log.error(message)
            status = {"status": response.status_code, "data": data}
            return Outcome.failed({"response": status, "error": {"message": message}})
        text = _message_text(data)
        if text is None:
            message = f"{url} answered without choices[0].message.content"
            log.error(message)
            return Outcome.failed({"error": {"message": message}})
        invocation = data.get("id") if isinstance(data, dict) else None
        log.info(f"completion {invocation or '(no id)'}: {len(text)} characters")
        return Outcome.success({"response": text, "invocationIdentifier": invocation})


def _message_text(data: Any) -> str | None:
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


class AiService:
    """The AI executor as a consumer group of the ai-requests topic (``loop``)."""

    def __init__(
        self, settings: Settings, producer: EventProducer, http: httpx.AsyncClient,
        clock: Callable[[], datetime],
    ) -> None:  # fmt: skip
        registry = TopicRegistry.from_settings(settings)
        self.executor = AiExecutor(http, settings)
        self.loop: KafkaWorker[AiRequest] = KafkaWorker(
            settings,
            self.executor,
            group=f"{settings.engine_group}-ai-executor",
            instance_id=f"{settings.executor_instance_id}-ai"
            if settings.executor_instance_id
            else None,
            max_records=50,
            producer=producer,
            clock=clock,
            topic=registry.ai_requests.name,
            message_type=AiRequest,
            metrics_name="ai",
        )
