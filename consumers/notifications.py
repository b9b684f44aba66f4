"""An INPUT node's notifications, delivered by the built-in webhook executor.

The engine hands each notification over as a :class:`WebhookRequest` with
``notification`` set (its index in the node's ``notifications``): a ``webhook``
target is one HTTP call of the rendered url, headers and body, an ``email`` target
(``request.email``) one message over SMTP. Either way the outcome is only a log line
on the node run (an IN_PROGRESS report): a notification that fails never fails the
approval, which waits for its responders whatever became of it.
"""

from __future__ import annotations

import asyncio
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage as MimeMessage
from typing import Protocol

import httpx

from switchyard.schemas import WebhookRequest
from switchyard.schemas.events import EmailMessage
from switchyard.schemas.settings import Settings

# A notification's receiver is a chat hook or a mail relay: it answers fast or not at all.
NOTIFICATION_TIMEOUT_S = 10.0


class _Log(Protocol):
    def info(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...


class _Sender(Protocol):
    async def send(
        self, request: WebhookRequest, body: object, seconds: float
    ) -> httpx.Response: ...  # fmt: skip


@dataclass(frozen=True)
class SmtpSettings:
    """Where email notifications go (``SWITCHYARD_SMTP_*``); None host: not configured."""

    host: str | None = None
    port: int = 587
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    sender: str = "switchyard@localhost"

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpSettings:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls(
            host=settings.smtp_host, port=settings.smtp_port, username=settings.smtp_username,
            password=password, starttls=settings.smtp_starttls, sender=settings.smtp_from,
        )  # fmt: skip


async def deliver(request: WebhookRequest, sender: _Sender, smtp: SmtpSettings, log: _Log) -> None:
    """Send one notification and log what became of it (never raises for a failure)."""
    which = f"notification {request.notification}"
    if request.email is not None:
        await _email(request.email, smtp, log, which)
        return
    try:
        response = await sender.send(request, request.body, NOTIFICATION_TIMEOUT_S)
    except httpx.HTTPError as error:
        log.warn(f"{which}: {request.method} {request.url} failed: {error!r}")
        return
    if response.is_success:
        log.info(f"{which}: {request.method} {request.url} answered {response.status_code}")
    else:
        log.warn(f"{which}: {request.method} {request.url} answered {response.status_code}")


async def _email(message: EmailMessage, smtp: SmtpSettings, log: _Log, which: str) -> None:
    if smtp.host is None:
        log.warn(f"{which}: email notifications are not configured (SWITCHYARD_SMTP_HOST)")
        return
    try:
        await asyncio.to_thread(_send_mail, smtp, message)
    except (OSError, smtplib.SMTPException) as error:
        log.warn(f"{which}: email to {', '.join(message.to)} failed: {error!r}")
        return
    log.info(f"{which}: emailed {', '.join(message.to)}")


def _send_mail(smtp: SmtpSettings, message: EmailMessage) -> None:
    """Blocking: run in a thread (smtplib has no async API)."""
    assert smtp.host is not None
    mime = MimeMessage()
    mime["From"] = smtp.sender
    mime["To"] = ", ".join(message.to)
    mime["Subject"] = message.subject
    mime.set_content(message.text)
    with smtplib.SMTP(smtp.host, smtp.port, timeout=NOTIFICATION_TIMEOUT_S) as client:
        if smtp.starttls:
            client.starttls()
        if smtp.username is not None:
            client.login(smtp.username, smtp.password or "")
        client.send_message(mime)
