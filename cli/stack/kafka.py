"""A single-node Apache Kafka broker in KRaft mode, run from Maven Central jars.

The jars of ``org.apache.kafka:kafka_2.13`` (plus a logging binding, which its POM
leaves out) are fetched once with ``mvn`` into the cache folder; the broker runs
as broker and controller in one small JVM.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from switchyard.cli.stack import processes
from switchyard.cli.stack.errors import StackError, ToolMissing
from switchyard.cli.stack.secure import (
    KAFKA_MECHANISM,
    StackSecrets,
    client_settings,
    write_private,
)
from switchyard.schemas.settings import Settings
from switchyard.topics.connection import kafka_options

Say = Callable[[str], None]  # reports progress: print, or a logger's info

_JAVA_FIX = "install a Java 17 runtime (apt-get install -y openjdk-17-jre-headless)"
_MVN_FIX = "install Maven (apt-get install -y maven)"

# Kafka's POM carries no logging backend (reload4j is compileOnly), so one is added.
_LOGGING_3X = """
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
    <dependency><groupId>ch.qos.reload4j</groupId><artifactId>reload4j</artifactId><version>1.2.25</version></dependency>"""
_LOGGING_4X = """
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.25.4</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.25.4</version></dependency>"""

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.switchyard</groupId><artifactId>kafka-broker-libs</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{version}</version></dependency>{logging}
  </dependencies>
</project>
"""

_LOG4J_3X = """log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
"""
_LOG4J_4X = """rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
logger.krs.name=kafka.server.KafkaRaftServer
logger.krs.level=INFO
"""


def _major(version: str) -> int:
    return int(version.split(".", 1)[0])


def libs_dir(settings: Settings) -> Path:
    return settings.cache_dir / f"kafka-{settings.kafka_version}" / "libs"


def ensure_jars(settings: Settings, say: Say | None = None) -> Path:
    """Fetch the broker's runtime jars once; later calls return the cached folder."""
    libs = libs_dir(settings)
    done = libs / ".complete"
    if done.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ToolMissing("mvn", _MVN_FIX)
    project = libs.parent
    project.mkdir(parents=True, exist_ok=True)
    logging = _LOGGING_3X if _major(settings.kafka_version) < 4 else _LOGGING_4X
    (project / "pom.xml").write_text(_POM.format(version=settings.kafka_version, logging=logging))
    if say:
        say(f"fetching Apache Kafka {settings.kafka_version} jars with Maven (once, ~50 MB)")
    started = time.monotonic()
    result = subprocess.run(
        [mvn, "-B", "-q", "-f", str(project / "pom.xml"), "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={libs.resolve()}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
        raise StackError(
            f"mvn could not fetch org.apache.kafka:kafka_2.13:{settings.kafka_version} "
            f"(exit {result.returncode}); is Maven Central reachable?\n"
            f"{(result.stdout + result.stderr)[-2000:]}"
        )
    done.write_text(f"{time.monotonic() - started:.1f}\n")
    if say:
        say(f"fetched Kafka jars in {time.monotonic() - started:.1f} s into {libs}")
    return libs


CLUSTER_BROKERS = 3
# Cluster controllers listen above the brokers' client ports: kafka_port..+2 for clients,
# kafka_controller_port+10..+12 for controllers, so the defaults (19092, 19093) don't overlap.
_CLUSTER_CONTROLLER_OFFSET = 10
_CLUSTER_HEAP = "256m"


@dataclass(frozen=True)
class KafkaNode:
    """Where one broker of the stack listens and which quorum it belongs to."""

    node_id: int
    port: int
    controller_port: int
    nodes: int  # brokers in the stack: 1, or CLUSTER_BROKERS

    @property
    def name(self) -> str:
        return "kafka" if self.nodes == 1 else f"kafka-{self.node_id}"


def kafka_nodes(settings: Settings, cluster: bool = False) -> list[KafkaNode]:
    """The stack's brokers: one on kafka_port, or three (kafka_port + 0..2, their
    controllers on kafka_controller_port + 10..12)."""
    if not cluster:
        return [KafkaNode(1, settings.kafka_port, settings.kafka_controller_port, 1)]
    base = settings.kafka_controller_port + _CLUSTER_CONTROLLER_OFFSET
    return [
        KafkaNode(i + 1, settings.kafka_port + i, base + i, CLUSTER_BROKERS)
        for i in range(CLUSTER_BROKERS)
    ]


def bootstrap_servers(settings: Settings, cluster: bool = False) -> str:
    return ",".join(f"127.0.0.1:{n.port}" for n in kafka_nodes(settings, cluster))


def _replication_properties(nodes: int) -> list[str]:
    # One broker can only keep one copy; three keep three, and a write needs two of them
    # (with acks=all) so that one broker down loses nothing acknowledged.
    copies, min_isr = (1, 1) if nodes == 1 else (nodes, 2)
    return [
        f"default.replication.factor={copies}",
        f"min.insync.replicas={min_isr}",
        f"offsets.topic.replication.factor={copies}",
        "offsets.topic.num.partitions=1",
        f"transaction.state.log.replication.factor={copies}",
        f"transaction.state.log.min.isr={min_isr}",
        "transaction.state.log.num.partitions=1",
    ]


def _listener_properties(node: KafkaNode, secrets: StackSecrets | None) -> list[str]:
    """PLAINTEXT everywhere; or (``--secure``) SASL_SSL for clients and between
    brokers, and TLS with client certificates to the controllers."""
    host = "127.0.0.1"
    client = "SASL_SSL" if secrets else "PLAINTEXT"
    lines = [
        f"listeners={client}://{host}:{node.port},CONTROLLER://{host}:{node.controller_port}",
        f"advertised.listeners={client}://{host}:{node.port}",
        "controller.listener.names=CONTROLLER",
        f"inter.broker.listener.name={client}",
    ]
    if secrets is None:
        return [*lines, "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"]
    certs = secrets.certs
    # The brokers' own login (inter-broker traffic) on the listener they share with clients.
    login = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{secrets.kafka_user}" password="{secrets.kafka_password}";'
    )
    return [
        *lines,
        "listener.security.protocol.map=CONTROLLER:SSL,SASL_SSL:SASL_SSL",
        f"sasl.enabled.mechanisms={KAFKA_MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={KAFKA_MECHANISM}",
        f"listener.name.sasl_ssl.{KAFKA_MECHANISM.lower()}.sasl.jaas.config={login}",
        # KRaft's controllers can't check SCRAM users (those live in the metadata they
        # serve): a client certificate from the stack's CA is their proof instead.
        "listener.name.controller.ssl.client.auth=required",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={certs.server_chain.resolve()}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={certs.ca_cert.resolve()}",
    ]


def _session_properties(nodes: int) -> list[str]:
    """A single broker restarted after ``kill -9`` is fenced until its controller expires
    the dead incarnation's session (9 s by default): 14.2 s to serve again against 4.6 s
    with a 2 s session (``python -m benchmarks.broker_restart``). Its controller is in
    the same process, so a short session costs nothing; a cluster keeps the default."""
    if nodes > 1:
        return []
    return ["broker.session.timeout.ms=3000", "broker.heartbeat.interval.ms=500"]


def _server_properties(
    settings: Settings, data: Path, node: KafkaNode, secrets: StackSecrets | None = None
) -> str:
    host = "127.0.0.1"
    voters = ",".join(
        f"{n.node_id}@{host}:{n.controller_port}"
        for n in kafka_nodes(settings, cluster=node.nodes > 1)
    )
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node.node_id}",
            f"controller.quorum.voters={voters}",
            *_listener_properties(node, secrets),
            f"log.dirs={data.resolve()}",
            "num.partitions=1",
            *_replication_properties(node.nodes),
            # A first consumer group would otherwise wait 3 s for more members.
            "group.initial.rebalance.delay.ms=0",
            *_session_properties(node.nodes),
            # Topics come from the registry (`switchyard topics ensure`), never by accident.
            "auto.create.topics.enable=false",
            "num.network.threads=2",
            "num.io.threads=2",
            "num.recovery.threads.per.data.dir=1",
            "log.cleaner.dedupe.buffer.size=1048577",
            *flush_properties(settings),
            "",
        ]
    )


def flush_properties(settings: Settings) -> list[str]:
    """The broker's flush under the durability profile: Kafka's default leaves it to the
    OS (the page cache survives a ``kill -9``, not a power failure); ``durable`` fsyncs
    each message before the produce is acknowledged (with ``acks=all`` on one node)."""
    if settings.durability == "durable":
        return ["log.flush.interval.messages=1"]
    return []


class KafkaBroker:
    """A broker of the local stack (the only one, or one of three): configure, format
    once, start, wait, stop."""

    def __init__(
        self, settings: Settings, node: KafkaNode | None = None, secrets: StackSecrets | None = None
    ) -> None:
        self.settings = settings
        self.secrets = secrets
        # How the launcher's own checks connect: as the stack's clients do.
        self.client = client_settings(settings, secrets) if secrets else settings
        self.node = node or kafka_nodes(settings)[0]
        self.home = settings.data_dir / self.node.name
        self.address = f"127.0.0.1:{self.node.port}"
        self.spec = processes.ProcessSpec(
            name=self.node.name,
            argv=(),  # filled in by start(), once the jars are known
            marker=str((self.home / "server.properties").resolve()),
            pid_file=settings.run_dir / f"{self.node.name}.pid",
            log_file=settings.log_dir / f"{self.node.name}.log",
        )

    def pid(self) -> int | None:
        return processes.read_pid(self.spec)

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise ToolMissing("java", _JAVA_FIX)
        return java

    def _heap(self) -> str:
        # Three JVMs share a small machine: each gets less unless the heap was asked for.
        if self.node.nodes > 1 and "kafka_heap" not in self.settings.model_fields_set:
            return _CLUSTER_HEAP
        return self.settings.kafka_heap

    def _jvm_args(self, libs: Path) -> list[str]:
        config = self.home / "log4j.properties"
        log_flag = (
            f"-Dlog4j.configuration=file:{config.resolve()}"
            if _major(self.settings.kafka_version) < 4
            else f"-Dlog4j2.configurationFile={config.resolve()}"
        )
        return [
            self._java(),
            "-Xms64m",
            f"-Xmx{self._heap()}",
            # Serial GC and C1 only: the broker idles most of the time on a 2-core box,
            # and these start faster and keep resident memory low.
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.settings.log_dir.resolve()}",
            log_flag,
            "-cp",
            f"{libs.resolve()}/*",
        ]

    def _configure(self) -> Path:
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        props = self.home / "server.properties"
        # Secured, it holds the brokers' SCRAM password: its owner's alone.
        write_private(props, _server_properties(self.settings, data, self.node, self.secrets))
        log4j = _LOG4J_3X if _major(self.settings.kafka_version) < 4 else _LOG4J_4X
        (self.home / "log4j.properties").write_text(log4j)
        return props

    def _cluster_id(self) -> str:
        """Made once; the brokers of a cluster share one (each formats its own storage)."""
        if self.node.nodes == 1:
            cluster_file = self.home / "cluster.id"
        else:
            cluster_file = self.settings.data_dir / "kafka-cluster.id"
        if not cluster_file.exists():
            cluster_file.parent.mkdir(parents=True, exist_ok=True)
            raw = uuid.uuid4().bytes
            cluster_file.write_text(base64.urlsafe_b64encode(raw).rstrip(b"=").decode())
        return cluster_file.read_text().strip()

    def _format(self, libs: Path, props: Path) -> None:
        # The SCRAM user can only be made when the storage is formatted (KRaft keeps it
        # in the metadata log, which the brokers' own login needs before they serve).
        secured_marker = self.home / "data" / "scram-user"
        if (self.home / "data" / "meta.properties").exists():
            if self.secrets and not secured_marker.exists():
                raise StackError(
                    f"{self.node.name}'s storage ({self.home / 'data'}) was formatted "
                    "without --secure, so it has no SCRAM user: `switchyard stack down`, "
                    "delete that folder (its topics go with it), then `up --secure`"
                )
            return  # formatted by an earlier `up`; skipping saves a JVM start
        scram = (
            [f"--add-scram={KAFKA_MECHANISM}=[name={self.secrets.kafka_user},"
             f"password={self.secrets.kafka_password}]"]
            if self.secrets else []
        )  # fmt: skip
        result = subprocess.run(
            [*self._jvm_args(libs), "kafka.tools.StorageTool", "format",
             # "=" form: a random id may start with "-", which argparse takes for an option.
             f"--cluster-id={self._cluster_id()}", f"--config={props}",
             "--ignore-formatted", *scram],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")
        if self.secrets:
            secured_marker.write_text(f"{self.secrets.kafka_user}\n")

    def start(self, say: Say | None = None) -> int:
        """Fetch the jars if needed and start the broker (not waiting for it); returns its pid."""
        libs = ensure_jars(self.settings, say)
        for port in (self.node.port, self.node.controller_port):
            if not processes.wait_port_free("127.0.0.1", port):
                holder = processes.listeners(port) or "?"
                raise StackError(
                    f"port {port} is in use by another program ({holder}); "
                    "stop it or set SWITCHYARD_KAFKA_PORT / SWITCHYARD_KAFKA_CONTROLLER_PORT"
                )
        props = self._configure()
        self._format(libs, props)
        argv = [*self._jvm_args(libs), "kafka.Kafka", str(props.resolve())]
        spec = dataclasses.replace(self.spec, argv=argv)
        return processes.start(spec)

    def wait_ready(self, pid: int, timeout: float = 90.0) -> None:
        """Block until a metadata request succeeds; raise with the log's tail if it dies.

        In a cluster no broker answers before a quorum of controllers has formed, which
        needs the next broker started: the first ones are waited for only until their
        controller listens, the last until the metadata lists every broker.
        """
        deadline = time.monotonic() + timeout
        last = self.node.node_id == self.node.nodes
        port = self.node.port if last else self.node.controller_port
        while not processes.port_open("127.0.0.1", port):
            self._check(pid, deadline)
            time.sleep(0.1)
        if not last:
            return
        nodes = kafka_nodes(self.settings, cluster=self.node.nodes > 1)
        while not asyncio.run(every_broker_answers(self.client, nodes)):
            self._check(pid, deadline)
            time.sleep(0.2)

    def _check(self, pid: int, deadline: float) -> None:
        name, log = self.node.name, self.spec.log_file
        if not processes.is_alive(pid):
            raise StackError(f"{name} exited during start-up:\n{processes.tail(log)}")
        if time.monotonic() > deadline:
            raise StackError(f"{name} not ready in time:\n{processes.tail(log)}")

    def stop(self) -> bool:
        return processes.stop(self.spec, grace_seconds=30.0)

    def detail(self) -> str:
        """Its node id, whether the metadata lists it, and its share of the ISRs."""
        return asyncio.run(describe_node(self.client, self.address, self.node.node_id))


def _admin(settings: Settings, bootstrap: str) -> AIOKafkaAdminClient:
    """An admin client of ``bootstrap`` connecting as ``settings`` say (TLS, SASL)."""
    options = {**kafka_options(settings), "bootstrap_servers": bootstrap}
    return AIOKafkaAdminClient(**options, request_timeout_ms=5000)


async def describe_node(settings: Settings, bootstrap: str, node_id: int) -> str:
    """``node 2, in metadata, in ISR of 37/37 replicas`` for a status line. (No controller:
    under KRaft the metadata's controller id is any broker, not the active controller.)"""
    admin = _admin(settings, bootstrap)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        topics = await admin.describe_topics()
    except Exception as error:
        return f"node {node_id}, no metadata ({type(error).__name__})"
    finally:
        await admin.close()
    listed = any(b["node_id"] == node_id for b in cluster.get("brokers", []))
    partitions = [p for t in topics for p in t.get("partitions", [])]
    replicas = sum(node_id in p["replicas"] for p in partitions)
    in_sync = sum(node_id in p["isr"] for p in partitions)
    where = "in metadata" if listed else "not in metadata"
    return f"node {node_id}, {where}, in ISR of {in_sync}/{replicas} replicas"


async def broker_count(settings: Settings, bootstrap: str) -> int:
    """How many brokers the metadata lists (0: no answer)."""
    admin = _admin(settings, bootstrap)
    try:
        await admin.start()
        described = await admin.describe_cluster()
    except Exception:
        return 0
    finally:
        await admin.close()
    return len(described.get("brokers", []))


async def every_broker_answers(settings: Settings, nodes: list[KafkaNode]) -> bool:
    """True when the metadata lists every broker and each answers on its own port.

    The count alone is not enough after a restart: the controllers' log still lists a
    broker that has not opened its listener yet, and a client sent to it by the
    metadata fails with NodeNotReadyError.
    """
    if await broker_count(settings, ",".join(f"127.0.0.1:{n.port}" for n in nodes)) < len(nodes):
        return False
    answers = await asyncio.gather(*(metadata_ok(settings, f"127.0.0.1:{n.port}") for n in nodes))
    return all(answers)


async def metadata_ok(settings: Settings, bootstrap: str) -> bool:
    """True when the broker answers a metadata request."""
    admin = _admin(settings, bootstrap)
    try:
        await admin.start()
        await admin.describe_cluster()
    except Exception:
        return False
    finally:
        await admin.close()
    return True
