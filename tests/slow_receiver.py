"""A webhook receiver on loopback that holds every call until the test releases it:
a call in flight for as long as a test needs (a timeout, a cancel meanwhile)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from switchyard.consumers.webhook import WebhookService
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from tests.helpers import LocalHandler, serving

HOLD_AT_MOST_S = 60.0  # a forgotten release must not hang the test session


@dataclass
class SlowReceiver:
    url: str
    calls: list[dict[str, Any]]  # {"path", "body", "idempotency_key"}, as they arrive
    release: threading.Event


@contextmanager
def slow_receiver() -> Iterator[SlowReceiver]:
    """A receiver that answers 200 ``{"late": true}`` once ``release`` is set; the
    calls it holds are released when the block ends, so the server can stop."""
    release = threading.Event()

    class _Held(LocalHandler):
        def do_POST(self) -> None:
            body = self.body()
            key = self.headers.get("idempotency-key")
            self.record({"path": self.path, "body": body, "idempotency_key": key})
            release.wait(HOLD_AT_MOST_S)
            # The caller may have given up on the call (its timeout): what is tested.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.answer(200, {"late": True})

    with serving(_Held) as (url, calls):
        try:
            yield SlowReceiver(url, calls, release)
        finally:
            release.set()


@asynccontextmanager
async def webhook_executor(settings: Settings) -> AsyncIterator[WebhookService]:
    """The webhook executor, consuming its requests until the block ends."""
    async with EventProducer(settings) as producer, httpx.AsyncClient() as http:
        service = WebhookService(settings, producer, http, lambda: datetime.now(UTC))
        async with service.loop:
            yield service
