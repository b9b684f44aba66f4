"""The built-in webhook executor against a local HTTP server: the ``Idempotency-Key``
it sends on every call, and where a non-2xx answer's status is in a FAILED report."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from switchyard.consumers.context import NodeLogger
from switchyard.consumers.webhook import WebhookExecutor
from switchyard.schemas import WebhookRequest
from tests.helpers import LocalHandler, serving

NODE_RUN = "wfnr_WebhookTest00001"
RUN = "wfr_WebhookTest00001"


class _Recorder(LocalHandler):
    """Records method, path, headers and body; ``/status/<n>`` answers n, else 200."""

    def _reply(self) -> None:
        seen = {"method": self.command, "path": self.path, "headers": dict(self.headers),
                "body": self.body()}  # fmt: skip
        self.record(seen)
        if self.path.startswith("/sleep/"):
            time.sleep(int(self.path.split("/")[2]) / 1000)
        status = int(self.path.split("/")[2]) if self.path.startswith("/status/") else 200
        self.answer(status, {"path": self.path})

    do_GET = do_POST = do_PUT = _reply


@pytest.fixture
def local() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with serving(_Recorder) as found:
        yield found


@pytest.fixture
async def executor() -> AsyncIterator[WebhookExecutor]:
    async with httpx.AsyncClient() as http:
        yield WebhookExecutor(http)


def _request(url: str, **config: Any) -> WebhookRequest:
    return WebhookRequest.model_validate({
        "url": url, "method": "POST", "body": {"service": "api"}, **config,
        "context": {"workflowIdentifier": "wf-hooks", "workflowRunId": RUN,
                    "nodeRunId": NODE_RUN, "nodeIdentifier": "call", "runId": NODE_RUN},
    })  # fmt: skip


def _log() -> NodeLogger:
    return NodeLogger(lambda: datetime.now(UTC), NODE_RUN)


def _header(seen: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in seen["headers"].items() if k.lower() == name.lower()]


@pytest.mark.parametrize("synchronized", [True, False])
async def test_every_call_carries_the_node_run_id_as_idempotency_key(
    executor: WebhookExecutor, local: tuple[str, list[dict[str, Any]]], synchronized: bool
) -> None:
    url, seen = local
    request = _request(f"{url}/hook", synchronized=synchronized, headers={"X-Team": "ops"})
    outcome = await executor.execute(request, _log())
    assert outcome.status == ("COMPLETED" if synchronized else "IN_PROGRESS")
    [call] = seen
    assert _header(call, "Idempotency-Key") == [NODE_RUN]
    assert _header(call, "X-Team") == ["ops"]
    if not synchronized:
        assert call["body"]["context"]["nodeRunId"] == NODE_RUN


async def test_a_get_carries_it_too(
    executor: WebhookExecutor, local: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = local
    await executor.execute(_request(f"{url}/read", method="GET"), _log())
    [call] = seen
    assert call["method"] == "GET"
    assert _header(call, "Idempotency-Key") == [NODE_RUN]


@pytest.mark.parametrize("spelling", ["Idempotency-Key", "idempotency-key", "IDEMPOTENCY-KEY"])
async def test_the_nodes_own_idempotency_key_wins(
    executor: WebhookExecutor, local: tuple[str, list[dict[str, Any]]], spelling: str
) -> None:
    url, seen = local
    await executor.execute(_request(f"{url}/hook", headers={spelling: "mine-1"}), _log())
    [call] = seen
    assert _header(call, "Idempotency-Key") == ["mine-1"]


@pytest.mark.parametrize("status", [400, 429, 500, 503])
async def test_a_non_2xx_answer_fails_with_its_status_in_output_response(
    executor: WebhookExecutor, local: tuple[str, list[dict[str, Any]]], status: int
) -> None:
    url, _ = local
    log = _log()
    outcome = await executor.execute(_request(f"{url}/status/{status}"), log)
    assert (outcome.status, outcome.result) == ("COMPLETED", "FAILED")
    assert outcome.output is not None
    # retryOn's HTTP statuses are matched against output.response.status.
    assert outcome.output["response"] == {"status": status, "data": {"path": f"/status/{status}"}}
    assert outcome.output["error"]["message"] == f"{url}/status/{status} answered {status}"
    assert [line.log_level for line in log.lines] == ["ERROR"]


async def test_success_keeps_its_shape(
    executor: WebhookExecutor, local: tuple[str, list[dict[str, Any]]]
) -> None:
    url, _ = local
    outcome = await executor.execute(_request(f"{url}/status/201"), _log())
    assert (outcome.status, outcome.result) == ("COMPLETED", "SUCCESS")
    assert outcome.output == {"response": {"status": 201, "data": {"path": "/status/201"}}}


async def test_an_async_webhook_refused_by_its_receiver_fails_with_the_status(
    executor: WebhookExecutor, local: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = local
    outcome = await executor.execute(_request(f"{url}/status/502", synchronized=False), _log())
    assert outcome.result == "FAILED"
    assert outcome.output is not None
    assert outcome.output["response"]["status"] == 502
    assert _header(seen[0], "Idempotency-Key") == [NODE_RUN]


async def test_a_call_that_times_out_fails_saying_so_for_the_retry_policy(
    executor: WebhookExecutor, local: tuple[str, list[dict[str, Any]]]
) -> None:
    url, _ = local
    outcome = await executor.execute(_request(f"{url}/sleep/1500", timeoutSeconds=0.2), _log())
    assert (outcome.status, outcome.result) == ("COMPLETED", "FAILED")
    assert outcome.output is not None
    # The machine retries it when retryOn names "timeout".
    assert outcome.output["timeout"] is True
    assert outcome.output["error"]["message"] == f"no answer from {url}/sleep/1500 within 0.2 s"
