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
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from switchyard.cli.stack import processes
from switchyard.cli.stack.errors import StackError, ToolMissing
from switchyard.schemas.settings import Settings

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


def _server_properties(settings: Settings, data: Path) -> str:
    host = "127.0.0.1"
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{host}:{settings.kafka_controller_port}",
            f"listeners=PLAINTEXT://{host}:{settings.kafka_port},"
            f"CONTROLLER://{host}:{settings.kafka_controller_port}",
            f"advertised.listeners=PLAINTEXT://{host}:{settings.kafka_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={data.resolve()}",
            "num.partitions=1",
            "default.replication.factor=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=1",
            # A first consumer group would otherwise wait 3 s for more members.
            "group.initial.rebalance.delay.ms=0",
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
    """The broker of the local stack: configure, format once, start, wait, stop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.data_dir / "kafka"
        self.address = f"127.0.0.1:{settings.kafka_port}"
        self.spec = processes.ProcessSpec(
            name="kafka",
            argv=(),  # filled in by start(), once the jars are known
            marker=str((self.home / "server.properties").resolve()),
            pid_file=settings.run_dir / "kafka.pid",
            log_file=settings.log_dir / "kafka.log",
        )

    def pid(self) -> int | None:
        return processes.read_pid(self.spec)

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise ToolMissing("java", _JAVA_FIX)
        return java

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
            f"-Xmx{self.settings.kafka_heap}",
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
        props.write_text(_server_properties(self.settings, data))
        log4j = _LOG4J_3X if _major(self.settings.kafka_version) < 4 else _LOG4J_4X
        (self.home / "log4j.properties").write_text(log4j)
        return props

    def _format(self, libs: Path, props: Path) -> None:
        if (self.home / "data" / "meta.properties").exists():
            return  # formatted by an earlier `up`; skipping saves a JVM start
        cluster_file = self.home / "cluster.id"
        if not cluster_file.exists():
            raw = uuid.uuid4().bytes
            cluster_file.write_text(base64.urlsafe_b64encode(raw).rstrip(b"=").decode())
        result = subprocess.run(
            [*self._jvm_args(libs), "kafka.tools.StorageTool", "format",
             # "=" form: a random id may start with "-", which argparse takes for an option.
             f"--cluster-id={cluster_file.read_text().strip()}", f"--config={props}",
             "--ignore-formatted"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")

    def start(self, say: Say | None = None) -> int:
        """Fetch the jars if needed and start the broker (not waiting for it); returns its pid."""
        libs = ensure_jars(self.settings, say)
        for port in (self.settings.kafka_port, self.settings.kafka_controller_port):
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
        """Block until a metadata request succeeds; raise with the log's tail if it dies."""
        deadline = time.monotonic() + timeout
        while not processes.port_open("127.0.0.1", self.settings.kafka_port):
            self._check(pid, deadline)
            time.sleep(0.1)
        while not asyncio.run(metadata_ok(self.address)):
            self._check(pid, deadline)
            time.sleep(0.2)

    def _check(self, pid: int, deadline: float) -> None:
        if not processes.is_alive(pid):
            raise StackError(f"Kafka exited during start-up:\n{processes.tail(self.spec.log_file)}")
        if time.monotonic() > deadline:
            raise StackError(f"Kafka not ready in time:\n{processes.tail(self.spec.log_file)}")

    def stop(self) -> bool:
        return processes.stop(self.spec, grace_seconds=30.0)


async def metadata_ok(bootstrap: str) -> bool:
    """True when the broker answers a metadata request."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        await admin.describe_cluster()
    except Exception:
        return False
    finally:
        await admin.close()
    return True
