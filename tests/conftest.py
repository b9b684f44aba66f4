"""Where the tests find Kafka and Redis, in this order:

1. ``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL`` from the environment;
2. testcontainers, when a Docker daemon answers;
3. the project's own launcher (``switchyard stack up``) with a test home and test ports.

When none works the session fails with a message saying how to provide one; it
never skips. Unit tests don't ask for these fixtures, so they need no services.

With ``SWITCHYARD_TEST_CLUSTER=1`` the services are a cluster: three KRaft brokers and a
Redis Cluster of three masters with a replica each (``stack up --cluster``'s
infrastructure, on test ports of its own), or, with the addresses given by the
environment, the cluster they name; every test process then uses the Redis Cluster
client, topics with three copies and one replica's WAIT before commits
(``scripts/test-cluster`` runs the suites that hold on it). The launcher's test cluster
is ``stack up --cluster --secure``'s: SASL_SSL (SCRAM) brokers and TLS Redis nodes
behind a password, which the ``settings`` fixture carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from switchyard.cli.stack.errors import StackError
from switchyard.cli.stack.kafka import bootstrap_servers
from switchyard.cli.stack.launcher import Stack, infrastructure
from switchyard.cli.stack.redis_cluster import form_cluster
from switchyard.cli.stack.secure import client_settings, stack_secrets
from switchyard.engine.store.client import connect, redis_client
from switchyard.engine.timers import TimerService
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from switchyard.topics.connection import kafka_options
from switchyard.topics.producer import EventProducer
from tests.integration.engine_support import Driver

REPO = Path(__file__).resolve().parents[1]
TEST_HOME = REPO / ".switchyard" / "test"
HOW_TO = (
    "set KAFKA_BOOTSTRAP_SERVERS and REDIS_URL to running services, start a Docker "
    "daemon, or install java, mvn and redis-server (scripts/bootstrap does) so the "
    "launcher can start them"
)


# The broker this session used, if any: its topics are deleted at the end.
_KAFKA_USED = pytest.StashKey[Settings]()


@dataclass(frozen=True)
class Services:
    kafka_bootstrap: str
    redis_url: str
    source: str  # "environment", "testcontainers" or "launcher"
    cluster: bool = False
    # Settings that reach secured servers (TLS, SASL, passwords): the secured test cluster's.
    security: Mapping[str, object] = field(default_factory=dict)


# The settings fields of a secured connection, beside the addresses.
_SECURITY_FIELDS = (
    "kafka_security_protocol", "kafka_sasl_mechanism", "kafka_sasl_username",
    "kafka_sasl_password", "kafka_ssl_cafile", "redis_password", "redis_ssl_ca_file",
)  # fmt: skip


def cluster_mode() -> bool:
    return os.environ.get("SWITCHYARD_TEST_CLUSTER", "") not in ("", "0")


def docker_daemon_available(timeout: float = 1.0) -> bool:
    """A fast probe: no docker import and no I/O when there is no socket to try."""
    if not os.environ.get("DOCKER_HOST") and not os.path.exists("/var/run/docker.sock"):
        return False
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@contextlib.contextmanager
def _containers() -> Iterator[Services]:
    import warnings

    with warnings.catch_warnings():
        # testcontainers 4.x warns that these modules moved to testcontainers.community.
        warnings.simplefilter("ignore", DeprecationWarning)
        from testcontainers.kafka import KafkaContainer
        from testcontainers.redis import RedisContainer

    with (
        KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as kafka,
        RedisContainer("redis:7.2") as redis_container,
    ):
        host = redis_container.get_container_host_ip()
        port = redis_container.get_exposed_port(6379)
        yield Services(kafka.get_bootstrap_server(), f"redis://{host}:{port}/0", "testcontainers")


def launcher_settings() -> Settings:
    """The test stack: its own home and ports, the shared jar cache."""
    return Settings(
        home=TEST_HOME,
        cache_home=REPO / ".switchyard" / "cache",
        kafka_port=29092,
        kafka_controller_port=29093,
        redis_port=26379,
    )


def cluster_launcher_settings() -> Settings:
    """The cluster test stack: brokers on 28092-28094 (controllers 28110-28112), Redis
    nodes on 27379-27384 (buses 28379-28384), a home of its own. Below 32768: Linux
    hands out the ports above as clients' source ports, and a node found one taken."""
    return Settings(
        home=REPO / ".switchyard" / "test-cluster",
        cache_home=REPO / ".switchyard" / "cache",
        kafka_port=28092,
        kafka_controller_port=28100,
        redis_port=27379,
    )


@contextlib.contextmanager
def _cluster_launcher() -> Iterator[Services]:
    """``stack up --cluster --secure``'s infrastructure: every suite of the cluster step
    then talks SASL_SSL to the brokers and TLS with a password to the Redis nodes."""
    settings = cluster_launcher_settings()
    secrets = stack_secrets(settings.home)
    stack = Stack(settings, infrastructure(settings, cluster=True, secrets=secrets))
    already_running = any(s.pid is not None for s in stack.status())
    if not already_running:
        shutil.rmtree(settings.data_dir, ignore_errors=True)
    say = lambda line: print(f"[test cluster] {line}")  # noqa: E731
    try:
        stack.up(say=say)
        form_cluster(settings, say, secrets=secrets)
    except StackError as exc:
        stack.down(say=lambda _: None)
        pytest.fail(f"could not start the cluster test stack: {exc}\nTo run the tests, {HOW_TO}.")
    secured = client_settings(settings, secrets)
    try:
        yield Services(
            bootstrap_servers(settings, cluster=True),
            secured.redis_url,
            "launcher",
            cluster=True,
            security={name: getattr(secured, name) for name in _SECURITY_FIELDS},
        )
    finally:
        if not already_running:
            stack.down(say=lambda _: None)


@contextlib.contextmanager
def _launcher() -> Iterator[Services]:
    settings = launcher_settings()
    stack = Stack(settings)
    already_running = any(s.pid is not None for s in stack.status())
    if not already_running:
        # Nothing of an earlier session runs: start from empty data folders.
        shutil.rmtree(settings.data_dir, ignore_errors=True)
    try:
        stack.up(say=lambda line: print(f"[test stack] {line}"))
    except StackError as exc:
        stack.down(say=lambda _: None)
        pytest.fail(f"could not start the local stack: {exc}\nTo run the tests, {HOW_TO}.")
    try:
        yield Services(
            f"127.0.0.1:{settings.kafka_port}",
            f"redis://127.0.0.1:{settings.redis_port}/0",
            "launcher",
        )
    finally:
        # A stack another session started (a developer's parallel run) is left to it.
        if not already_running:
            stack.down(say=lambda _: None)


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    redis_url = os.environ.get("REDIS_URL")
    if kafka and redis_url:
        yield Services(kafka, redis_url, "environment", cluster=cluster_mode())
    elif kafka or redis_url:
        pytest.fail("set both KAFKA_BOOTSTRAP_SERVERS and REDIS_URL, or neither")
    elif cluster_mode():
        with _cluster_launcher() as found:
            yield found
    elif docker_daemon_available():
        with _containers() as found:
            yield found
    else:
        with _launcher() as found:
            yield found


@pytest.fixture(scope="session")
def session_tag(request: pytest.FixtureRequest) -> Iterator[str]:
    """Unique per test session, so topics and keys of one run never meet another's.
    The session's topics are deleted at its end: a broker kept running across many
    sessions would otherwise gather tens of thousands of partitions, and a restart
    of it then spends minutes recovering their logs."""
    tag = uuid.uuid4().hex[:8]
    yield tag
    used = request.config.stash.get(_KAFKA_USED, None)
    if used is not None:
        asyncio.run(_delete_topics(used, f"test-{tag}."))


async def _delete_topics(settings: Settings, prefix: str) -> None:
    admin = AIOKafkaAdminClient(**kafka_options(settings), request_timeout_ms=10_000)
    try:
        await asyncio.wait_for(admin.start(), 10)
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    except (KafkaError, TimeoutError) as error:  # cleanup only: the result stands
        print(f"could not delete this session's topics ({prefix}*): {error!r}")
    finally:
        await admin.close()


@pytest.fixture
def settings(services: Services, session_tag: str, request: pytest.FixtureRequest) -> Settings:
    """Settings pointing at the test services, with a per-session topic prefix."""
    made = Settings(
        kafka_bootstrap_servers=services.kafka_bootstrap,
        redis_url=services.redis_url,
        topic_prefix=f"test-{session_tag}.",
        # Webhook tests call servers on loopback, which the egress guard refuses
        # unless allowed (tests of the refusal build their own settings).
        webhook_allow_hosts=["127.0.0.1/32"],
        home=TEST_HOME,
        cache_home=REPO / ".switchyard" / "cache",
        # Redis is shared with other sessions: no process a test starts prunes their
        # runs (tests of retention set their own, on a database of their own).
        run_retention_days=0,
        # Processes a test starts serve no ops endpoints unless it gives them ports
        # (tests/observability/processes.py): fixed ports would collide across sessions.
        engine_ops_port=0, executor_ops_port=0, timers_ops_port=0, scheduler_ops_port=0,
        triggers_ops_port=0,
        # On a cluster, as `stack up --cluster` runs: three copies, one replica's WAIT.
        redis_cluster=services.cluster,
        topic_replication_factor=3 if services.cluster else 1,
        redis_wait_replicas=1 if services.cluster else 0,
        **services.security,  # type: ignore[arg-type]
    )  # fmt: skip
    request.config.stash[_KAFKA_USED] = made
    return made


@pytest.fixture
async def topics(settings: Settings) -> Settings:
    """The session's settings with the registry's topics created (packages may override)."""
    await ensure_topics(settings)
    return settings


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = redis_client(settings)  # a cluster's client on a cluster
    await connect(client)
    yield client
    await client.aclose()


@pytest.fixture
async def producer(topics: Settings) -> AsyncIterator[EventProducer]:
    async with EventProducer(topics) as p:
        yield p


@pytest.fixture
async def timers(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer
) -> AsyncIterator[TimerService]:
    """The timer service. Timers are one set per Redis database: a test that runs it
    overrides ``settings`` with ``tests.helpers.private_redis_db``."""
    async with TimerService(topics, redis, producer) as service:
        yield service


@pytest.fixture
def driver(topics: Settings, redis: aioredis.Redis, producer: EventProducer) -> Driver:
    """Talks to the engine as the bridge and external systems do (Kafka and Redis)."""
    return Driver(topics, redis, producer)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test whose fixtures reach ``services`` needs Kafka and Redis: it is marked
    ``integration`` whether or not its module says so, so ``-m "not integration"``
    runs without any service."""
    for item in items:
        if "services" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
