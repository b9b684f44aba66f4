"""The bridge's metrics: HTTP requests by route template, and claim/ack.

HTTP (:class:`HttpMetrics`, a pure ASGI middleware outside the body limit, so its
413s are counted too):

* ``switchyard_http_requests_total{route,method,status}``;
* ``switchyard_http_request_duration_seconds{route,method}``.

``route`` is the template the router matched (``/v1/workflows/runs/{run_id}``), never
the raw path: a mount of static files (the UI, the docs' assets) is one label
(``/ui/{path}``), a path that no route matches is ``unmatched``, and a request
refused before routing (the body limit's 413) is ``unrouted``. ``method`` is
one of the standard methods or ``other``. A request counts once, when its response
ends; its duration runs to the response's last byte. A live stream
(``text/event-stream``) never ends while its client stays, so it counts when its
response starts, and its duration is the time to its first byte (the headers). An
exception before any response counts as 500 (what Starlette then answers); a client
gone before it: 499.

Claims (recorded by :mod:`switchyard.bridge.claims`):

* ``switchyard_claims_pending{installation}``: the size of ``sy:claims:<installation>``
  (visible and claimed-but-unacked node runs), read from Redis at scrape time;
* ``switchyard_claim_seconds``: one claim-pending call;
* ``switchyard_claimed_total{installation}``: node runs handed out by claims;
* ``switchyard_claim_acks_total{installation,outcome}``: ``acked``, ``already_acked``
  (409), ``unknown`` (404, installation ``(unknown)``: no record names it).

Token requests (recorded by :mod:`switchyard.bridge.auth_limits`):

* ``switchyard_auth_attempts_limited_total{reason}``: answered 429 because the client
  id's (``client``) or the caller address's (``address``) failures filled the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Sequence

import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge, Histogram
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchyard.engine.store import keys
from switchyard.topics.telemetry.metrics import (
    DURATION_BUCKETS,
    add_refresher,
    enabled,
    refreshers,
)

HTTP_REQUESTS = Counter(
    "switchyard_http_requests_total",
    "HTTP requests the bridge answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "switchyard_http_request_duration_seconds",
    "Time to the response's last byte (a live stream's: to its first).",
    ["route", "method"],
    buckets=DURATION_BUCKETS,
)
CLAIMS_PENDING = Gauge(
    "switchyard_claims_pending",
    "Node runs in an installation's pending-claims set (claimed-but-unacked included).",
    ["installation"],
)
CLAIM_SECONDS = Histogram(
    "switchyard_claim_seconds", "One claim-pending call.", buckets=DURATION_BUCKETS
)
CLAIMED = Counter(
    "switchyard_claimed_total", "Node runs handed out by claim-pending.", ["installation"]
)
CLAIM_ACKS = Counter(
    "switchyard_claim_acks_total",
    "Acks of claimed node runs by outcome (acked, already_acked, unknown).",
    ["installation", "outcome"],
)

AUTH_LIMITED = Counter(
    "switchyard_auth_attempts_limited",
    "Token requests answered 429 before any secret check, by the limit hit (client, address).",
    ["reason"],
)

UNMATCHED = "unmatched"
UNROUTED = "unrouted"
UNKNOWN_INSTALLATION = "(unknown)"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STREAM = b"text/event-stream"


def route_label(scope: Scope, root_path: str = "") -> str:
    """The route template of a request, once the app has answered it.

    FastAPI's router names the API route it chose in the scope (``route``), but not a
    plain Starlette route (``/metrics``), which is matched against the app's routes
    here, nor a mount, which shows as the ``root_path`` it added to the one the request
    came in with (``root_path``). The router marks the scope as soon as it runs
    (``router``): a request answered before it (the body limit's 413) is ``unrouted``.
    """
    mounted: str = scope.get("root_path", "")[len(root_path) :]
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return mounted + path
    if mounted:
        return f"{mounted}/{{path}}"  # static files: one label for the mount
    if "router" not in scope:
        return UNROUTED
    path = getattr(_match(scope), "path", None)
    return path if isinstance(path, str) else UNMATCHED


def _match(scope: Scope) -> BaseRoute | None:
    router = getattr(scope.get("app"), "router", None)
    routes: list[BaseRoute] = getattr(router, "routes", [])
    for route in routes:
        found, _ = route.matches(scope)
        if found is not Match.NONE:
            return route
    return None


class HttpMetrics:
    """Counts and times each HTTP request; see the module doc."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Children by (route, method, status): .labels() takes a lock and checks the
        # labels; a dict lookup is all a request needs once a combination was seen.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not enabled():
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(self, scope, send)
        try:
            await self.app(scope, receive, exchange.send)
        except asyncio.CancelledError:
            exchange.finish(499)
            raise
        except BaseException:
            exchange.finish(500)
            raise
        exchange.finish(500)  # an app that returned without answering: Starlette's 500

    def record(self, scope: Scope, root_path: str, status: int, seconds: float) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "other"
        key = (route_label(scope, root_path), method, status)
        children = self._children.get(key)
        if children is None:
            children = (HTTP_REQUESTS.labels(key[0], method, str(status)),
                        HTTP_DURATION.labels(key[0], method))  # fmt: skip
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


class _Exchange:
    """One request's response as it is sent: records it once (see the module doc)."""

    __slots__ = ("done", "metrics", "root_path", "scope", "started", "status", "upstream")

    def __init__(self, metrics: HttpMetrics, scope: Scope, send: Send) -> None:
        self.metrics = metrics
        self.scope = scope
        self.root_path: str = scope.get("root_path", "")  # a mount changes it on the way in
        self.upstream = send
        self.started = time.perf_counter()
        self.status = 0
        self.done = False

    async def send(self, message: Message) -> None:
        kind = message["type"]
        await self.upstream(message)
        if kind == "http.response.start":
            self.status = message["status"]
            if _is_stream(message):
                self.finish(self.status)
        elif kind == "http.response.body" and not message.get("more_body", False):
            self.finish(self.status)

    def finish(self, fallback: int) -> None:
        if self.done:
            return
        self.done = True
        seconds = time.perf_counter() - self.started
        self.metrics.record(self.scope, self.root_path, self.status or fallback, seconds)


def _is_stream(start: Message) -> bool:
    for name, value in start.get("headers", ()):
        if name.lower() == b"content-type":
            return bool(value.startswith(_STREAM))
    return False


def claimed(installation: str, count: int, seconds: float) -> None:
    if not enabled():
        return
    CLAIM_SECONDS.observe(seconds)
    if count:
        CLAIMED.labels(installation).inc(count)


def acked(installation: str | None, outcome: str) -> None:
    if not enabled():
        return
    CLAIM_ACKS.labels(installation or UNKNOWN_INSTALLATION, outcome).inc()


class PendingClaims:
    """Sets ``switchyard_claims_pending`` from Redis: each partition's pending sorted
    set of each installation in that partition's ``sy:claimants`` set, summed per
    installation.

    The first refresh also finds, by one SCAN of ``sy:claims:*``, the pending sets of a
    store written before ``sy:claimants`` existed, and adds their installations; after
    that a scrape costs a call per partition and a ZCARD per installation, whatever
    the size of the keyspace (a SCAN at every scrape walked every key: with the runs
    kept for 30 days, most of Redis' time spent on metrics). Redis deletes a sorted
    set when its last member goes, so such an installation is shown at 0.
    """

    def __init__(self, redis: aioredis.Redis, tags: Sequence[str]) -> None:
        self.redis = redis
        self.tags = list(tags)
        self.backfilled = False

    async def refresh(self) -> None:
        if not enabled():
            return
        if not self.backfilled:
            await self._backfill()
            self.backfilled = True
        async with self.redis.pipeline(transaction=False) as pipe:
            for tag in self.tags:
                pipe.smembers(keys.claimants(tag))
            members = await pipe.execute()
        found = [(tag, _text(name)) for tag, names in zip(self.tags, members, strict=True)
                 for name in names]  # fmt: skip
        async with self.redis.pipeline(transaction=False) as pipe:
            for tag, name in found:
                pipe.zcard(keys.claims(name, tag))
            counts = await pipe.execute()
        sizes: dict[str, int] = {}
        for (_, name), count in zip(found, counts, strict=True):
            sizes[name] = sizes.get(name, 0) + int(count)
        for name, size in sizes.items():
            CLAIMS_PENDING.labels(name).set(size)

    async def _backfill(self) -> None:
        """``sy:claimants`` from the pending sets themselves (``sy:claims:{p…}:<id>``)."""
        wanted = set(self.tags)
        found: list[tuple[str, str]] = []
        async for key in self.redis.scan_iter(match=f"{keys.PREFIX}claims:*", count=1000,
                                              _type="zset"):  # fmt: skip
            head, brace, name = _text(key)[len(f"{keys.PREFIX}claims:") :].partition("}:")
            tag = f"{head}}}"
            if brace and tag in wanted:
                found.append((tag, name))
        if found:
            async with self.redis.pipeline(transaction=False) as pipe:
                for tag, name in found:
                    pipe.sadd(keys.claimants(tag), name)
                await pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# The bridges of this process (tests build several in one interpreter; a process runs
# one): the last one opened is the one refreshed. A refresher cannot be removed, so one
# is added once and reads this list.
_pending_sources: list[PendingClaims] = []


async def refresh_pending_claims() -> None:
    if enabled() and _pending_sources:
        await _pending_sources[-1].refresh()


@contextlib.contextmanager
def pending_claims_refreshed(redis: aioredis.Redis, tags: Sequence[str]) -> Iterator[PendingClaims]:
    """While open, each scrape of ``/metrics`` sets the pending-claims gauge from ``redis``."""
    if refresh_pending_claims not in refreshers():
        add_refresher(refresh_pending_claims)
    source = PendingClaims(redis, tags)
    _pending_sources.append(source)
    try:
        yield source
    finally:
        _pending_sources.remove(source)
