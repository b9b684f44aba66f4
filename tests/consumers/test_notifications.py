"""An INPUT node's notifications in the webhook executor: sent as rendered, the outcome
only logged (IN_PROGRESS, never a result), a failure a warning; email over SMTP (a
local SMTP server), or a warning when SMTP is not configured."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from switchyard.consumers.context import NodeLogger
from switchyard.consumers.notifications import SmtpSettings
from switchyard.consumers.webhook import WebhookExecutor
from switchyard.schemas import WebhookRequest
from tests.helpers import LocalHandler, serving

NODE_RUN = "wfnr_NotifyTest000001"


class _Hook(LocalHandler):
    def do_POST(self) -> None:
        self.record({"path": self.path, "body": self.body()})
        self.answer(500 if self.path == "/broken" else 200, {"ok": True})


@pytest.fixture
def hook() -> Iterator[tuple[str, list[Any]]]:
    with serving(_Hook) as found:
        yield found


def _request(url: str, **fields: Any) -> WebhookRequest:
    return WebhookRequest.model_validate({
        "url": url, "method": "POST", "body": {"text": "approve?"}, "notification": 0, **fields,
        "context": {"workflowIdentifier": "wf", "workflowRunId": "wfr_NotifyTest000001",
                    "nodeRunId": NODE_RUN, "nodeIdentifier": "ask", "runId": NODE_RUN},
    })  # fmt: skip


def _log() -> NodeLogger:
    return NodeLogger(lambda: datetime.now(UTC), NODE_RUN)


async def _run(request: WebhookRequest, smtp: SmtpSettings | None = None) -> list[Any]:
    log = _log()
    async with httpx.AsyncClient() as http:
        outcome = await WebhookExecutor(http, smtp=smtp).execute(request, log)
    assert (outcome.status, outcome.result, outcome.output) == ("IN_PROGRESS", None, None)
    return list(log.lines)


async def test_a_webhook_notification_is_sent_as_rendered_and_logged(
    hook: tuple[str, list[Any]],
) -> None:
    url, seen = hook
    [line] = await _run(_request(f"{url}/hook"))
    assert seen == [{"path": "/hook", "body": {"text": "approve?"}}]
    assert (line.log_level, line.log) == ("INFO", f"notification 0: POST {url}/hook answered 200")


async def test_a_failed_notification_is_a_warning(hook: tuple[str, list[Any]]) -> None:
    url, _ = hook
    [line] = await _run(_request(f"{url}/broken"))
    assert (line.log_level, line.log) == ("WARN", f"notification 0: POST {url}/broken answered 500")
    [refused] = await _run(_request("http://127.0.0.1:9/nobody"))
    assert refused.log_level == "WARN"
    assert "failed" in refused.log


EMAIL = {"to": ["alice@example.com"], "subject": "Approval requested", "text": "Deploy?"}


async def test_email_without_smtp_is_logged_as_not_configured() -> None:
    [line] = await _run(_request("mailto:alice@example.com", email=EMAIL))
    assert line.log_level == "WARN"
    assert line.log.endswith("email notifications are not configured (SWITCHYARD_SMTP_HOST)")


@pytest.fixture
async def smtp_server() -> AsyncIterator[tuple[int, list[str]]]:
    """A minimal SMTP server: accepts one message per session, records its data."""
    received: list[str] = []

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 test ESMTP\r\n")
        while line := await reader.readline():
            command = line.decode().strip().upper()
            if command.startswith("EHLO") or command.startswith("HELO"):
                writer.write(b"250 test\r\n")
            elif command == "DATA":
                writer.write(b"354 go on\r\n")
                await writer.drain()
                data = await reader.readuntil(b"\r\n.\r\n")
                received.append(data.decode())
                writer.write(b"250 queued\r\n")
            elif command == "QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port, received


async def test_email_is_sent_over_smtp_when_configured(
    smtp_server: tuple[int, list[str]],
) -> None:
    port, received = smtp_server
    smtp = SmtpSettings(host="127.0.0.1", port=port, starttls=False, sender="sy@example.com")
    [line] = await _run(_request("mailto:alice@example.com", email=EMAIL), smtp)
    assert (line.log_level, line.log) == ("INFO", "notification 0: emailed alice@example.com")
    [message] = received
    assert "To: alice@example.com" in message
    assert "Subject: Approval requested" in message
    assert "Deploy?" in message
