"""``create_app(settings)``: the bridge's FastAPI app (no module-level app).

The lifespan opens Redis, the Kafka producer, the ``sy:notify`` subscription and the
run waker (one blocking read of ``sy:runs:events`` for the per-run streams),
and loads the auth file; it fails at start, with a message saying what to set,
when the token secret or the auth file is missing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI
from redis.exceptions import RedisError

from switchyard.bridge import (
    action_runs,
    approvals,
    auth,
    claims,
    entities,
    integrations,
    layouts,
    node_runs,
    organization,
    reruns,
    runs,
    streams,
    web,
    workflows,
)
from switchyard.bridge.auth_limits import TokenAttempts
from switchyard.bridge.body_limit import BodyLimit
from switchyard.bridge.context import BridgeContext, utc_now
from switchyard.bridge.credentials import Credentials
from switchyard.bridge.errors import install_error_handlers
from switchyard.bridge.metrics import HttpMetrics, pending_claims_refreshed
from switchyard.bridge.notify import RunNotifier
from switchyard.bridge.run_waker import RunWaker
from switchyard.bridge.tokens import TokenSigner
from switchyard.engine.store.client import connect, redis_client
from switchyard.engine.store.runs import RunStore
from switchyard.engine.store.workflows import WorkflowStore
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from switchyard.topics.telemetry import tracing
from switchyard.topics.telemetry.ops import Check, CheckFn, ops_routes

DESCRIPTION = """Switchyard's runs API, compatible with Port's Workflows API: get a token
with `POST /v1/auth/access_token`, then send `Authorization: Bearer <token>`.
Errors are `{ok: false, error, message}`, the message naming the field."""


def create_app(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    if settings.token_secret is None:
        raise ValueError("the bridge needs SWITCHYARD_TOKEN_SECRET to sign access tokens")
    signer = TokenSigner(settings.token_secret.get_secret_value(), settings.token_ttl_seconds)
    credentials = Credentials.load(settings.auth_path)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = redis_client(settings)
        producer = EventProducer(settings)
        notifier = RunNotifier(client)
        runs = RunStore(client, settings.inbox_partitions)
        waker = RunWaker(settings, runs.tags())
        try:
            await connect(client)  # before the first requests reach it at once
            await producer.start()
            await notifier.start()
            await waker.start()
            app.state.bridge = BridgeContext(
                settings=settings,
                registry=TopicRegistry.from_settings(settings),
                redis=client,
                producer=producer,
                runs=runs,
                workflows=WorkflowStore(client),
                notifier=notifier,
                waker=waker,
                credentials=credentials,
                signer=signer,
                token_attempts=TokenAttempts.from_settings(settings, client, credentials),
                clock=clock,
            )
            with pending_claims_refreshed(client, runs.tags()):  # claims pending at scrapes
                yield
        finally:
            await waker.stop()
            await notifier.stop()
            await producer.stop()
            await client.aclose()

    app = FastAPI(
        title="Switchyard",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs is served by web.install, with its assets from the package; no /redoc.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.request_body_max_bytes)
    # Outside the body limit, so its 413s are counted too.
    app.add_middleware(HttpMetrics)
    # Runs first: /v1/workflows/runs must not be read as the workflow "runs"; streams
    # before runs: /v1/workflows/runs/stream must not be read as a run id.
    routers = (auth, streams, runs, reruns, node_runs, claims, workflows, integrations,
               organization, action_runs, entities, approvals)  # fmt: skip
    for module in routers:
        app.include_router(module.router)
    app.include_router(layouts.router)
    # /metrics, /healthz, /readyz on the API port, unauthenticated like a scraper expects.
    app.router.routes.extend(ops_routes(_ops_checks(app)))
    web.install(app)  # /ui, /, /docs
    tracing.instrument_app(app)  # when the OTEL_* environment asks for traces
    return app


def _ops_checks(app: FastAPI) -> dict[str, CheckFn]:
    """The bridge's readiness: its Redis answers and a Kafka broker does (read from the
    context the lifespan built, so not ready before it has)."""

    def context() -> BridgeContext:
        bridge: BridgeContext | None = getattr(app.state, "bridge", None)
        if bridge is None:
            raise RuntimeError("the bridge has not started")
        return bridge

    async def redis() -> Check:
        try:
            await context().redis.ping()
        except RedisError as error:  # its repr says only "network:ConnectionError"
            return Check.failed(f"PING failed: {error}")
        return Check.passed("PING answered")

    async def kafka() -> Check:
        brokers = await context().producer.reachable()
        return Check.passed(f"metadata from {brokers} broker(s)")

    return {"redis": redis, "kafka": kafka}
