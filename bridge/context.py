"""What every route needs, opened by the app's lifespan: Redis, the producer, stores, auth."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis
from fastapi import Request

from switchyard.bridge.auth_limits import TokenAttempts
from switchyard.bridge.credentials import Credentials
from switchyard.bridge.notify import RunNotifier
from switchyard.bridge.run_waker import RunWaker
from switchyard.bridge.tokens import TokenSigner
from switchyard.engine.store.runs import RunStore
from switchyard.engine.store.workflows import WorkflowStore
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class BridgeContext:
    """The bridge's long-lived resources; built in ``create_app``'s lifespan."""

    settings: Settings
    registry: TopicRegistry
    redis: aioredis.Redis
    producer: EventProducer
    runs: RunStore
    workflows: WorkflowStore
    notifier: RunNotifier
    waker: RunWaker
    credentials: Credentials
    signer: TokenSigner
    token_attempts: TokenAttempts
    clock: Callable[[], datetime] = utc_now


def context(request: Request) -> BridgeContext:
    ctx = getattr(request.app.state, "bridge", None)
    if not isinstance(ctx, BridgeContext):
        raise RuntimeError("the bridge's lifespan has not run (use create_app and its lifespan)")
    return ctx
