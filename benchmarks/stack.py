"""The benchmark's own stack (Kafka, Redis, engine, executor, bridge) on its own ports,
and the benchmark's worker processes.

Started with ``switchyard stack up`` in a fresh home folder, so figures never mix with
a developer's stack or the tests'; stopped with ``stack down`` afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import redis.asyncio as aioredis

from switchyard.cli.stack.full import SERVICE_NAMES, environment, full_stack, local_settings
from switchyard.cli.stack.processes import resident_kib
from switchyard.cli.stack.profile import StackProfile
from switchyard.cli.stack.services import PythonService
from switchyard.engine.store.client import redis_client
from switchyard.engine.store.workflows import WorkflowExists, WorkflowStore
from switchyard.schemas import parse_workflow
from switchyard.schemas.settings import Settings

Durability = Literal["default", "durable"]  # SWITCHYARD_DURABILITY


@dataclass(frozen=True)
class Ports:
    # Below 32768: ports in ip_local_port_range may be a client's source port when the
    # stack starts (a broker once failed to bind 33092 so).
    kafka: int = 24092
    controller: int = 24093
    redis: int = 24379
    bridge: int = 24080
    ops: int = 24101  # engine's /metrics; executor, timers, scheduler, triggers the next four


def bench_settings(home: Path, ports: Ports, cache: Path | None, *,
                   durability: Durability = "default",
                   shape: StackProfile | None = None) -> Settings:  # fmt: skip
    settings = Settings(
        durability=durability,
        home=home, cache_home=cache, kafka_port=ports.kafka,
        kafka_controller_port=ports.controller, redis_port=ports.redis,
        bridge_port=ports.bridge,
        # Ops ports of the benchmark's own, not a developer stack's 9101-9105.
        engine_ops_port=ports.ops, executor_ops_port=ports.ops + 1,
        timers_ops_port=ports.ops + 2, scheduler_ops_port=ports.ops + 3,
        triggers_ops_port=ports.ops + 4,
        # The webhook workload calls a server on loopback, which the egress guard refuses.
        webhook_allow_hosts=["127.0.0.1/32"],
    )  # fmt: skip
    return local_settings(settings, shape)


class BenchStack:
    """``stack up`` / ``stack down`` of the benchmark's settings, and what runs on it."""

    def __init__(
        self, settings: Settings, say: Any = print, shape: StackProfile | None = None
    ) -> None:
        self.settings = settings
        self.say = say
        # One broker, one Redis, one engine; or `stack up --cluster` / `--engines N`.
        self.shape = shape or StackProfile()
        infra, services = full_stack(settings, self.shape)
        self._components = {c.spec.name: c for c in [*infra.components, *services.components]}
        self.env = {**os.environ, **environment(settings)}
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(Path.cwd()), os.environ.get("PYTHONPATH", "")) if p
        )
        self._workers: list[subprocess.Popen[bytes]] = []
        self._worker_names: dict[int, str] = {}

    def _cli(self, *args: str) -> None:
        command = [sys.executable, "-m", "switchyard.cli.main", *args]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    def up(self, extra_env: Mapping[str, str] | None = None) -> None:
        """Fresh stack; ``extra_env`` goes to Switchyard's processes (and the broker's
        and Redis's, which read none of it)."""
        self._cli("stack", "down")
        shutil.rmtree(self.settings.home, ignore_errors=True)  # fresh data every run
        started = time.monotonic()
        saved, self.env = self.env, {**self.env, **(extra_env or {})}
        try:
            self._cli("stack", "up", *self._shape_args())
        finally:
            self.env = saved
        self.say(f"stack up in {time.monotonic() - started:.1f} s ({self.settings.home})")

    def _shape_args(self) -> list[str]:
        cluster = ["--cluster"] if self.shape.cluster else []
        return [*cluster, "--engines", str(self.shape.engines)]

    @property
    def engines(self) -> list[str]:
        """The engine processes' names: ``engine``, or ``engine-1`` .. ``engine-N``."""
        if self.shape.engines == 1:
            return ["engine"]
        return [f"engine-{i}" for i in range(1, self.shape.engines + 1)]

    def _services(self, extra_env: Mapping[str, str] | None = None) -> list[PythonService]:
        env = {**self.env, **(extra_env or {})}
        bridge = f"http://{self.settings.bridge_host}:{self.settings.bridge_port}"
        services: list[PythonService] = []
        for name in [*self.engines, *(n for n in SERVICE_NAMES if n != "engine")]:
            args = ("engine",) if name.startswith("engine-") else None
            own = dict(env)
            if args:
                own["SWITCHYARD_ENGINE_INSTANCE_ID"] = name
            services.append(PythonService(self.settings, name, own, args=args,
                                          address=bridge if name == "bridge" else ""))  # fmt: skip
        return services

    def stop_services(self) -> None:
        """Stop Switchyard's processes (all at once), leaving Kafka and Redis up."""
        with ThreadPoolExecutor(len(SERVICE_NAMES)) as pool:
            list(pool.map(PythonService.stop, self._services()))

    def start_services(self, extra_env: Mapping[str, str] | None = None) -> None:
        """Start Switchyard's processes (after :meth:`stop_services`) with ``extra_env``."""
        started = [(service, service.start()) for service in self._services(extra_env)]
        for service, pid in started:
            service.wait_ready(pid)

    def down(self) -> None:
        for worker in list(self._workers):
            self.stop_worker(worker)
        self._cli("stack", "down")

    def pid(self, name: str) -> int | None:
        try:
            return int((self.settings.run_dir / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def rss_mib(self, name: str) -> float | None:
        pid = self.pid(name)
        kib = resident_kib(pid) if pid else None
        return round(kib / 1024, 1) if kib else None

    def service_pids(self) -> dict[str, int | None]:
        """Switchyard's processes, by name."""
        return {
            name: self.pid(name)
            for name in [*self.engines, *(n for n in SERVICE_NAMES if n != "engine")]
        }

    def pids(self) -> dict[str, int | None]:
        """Every process of the stack: Switchyard's, the brokers, the Redis nodes and the
        benchmark's workers (``worker-<workload>``), for :mod:`benchmarks.cpu`."""
        found = {name: component.pid() for name, component in self._components.items()}
        for process in self._workers:
            found[self._worker_names.get(process.pid, f"worker-{process.pid}")] = process.pid
        return found

    def rss_of_services(self) -> dict[str, float | None]:
        names = [*self.engines, "executor", "timers", "bridge"]
        return {name: self.rss_mib(name) for name in names}

    def spawn(self, module: str, *args: str, extra_env: dict[str, str] | None = None
              ) -> subprocess.Popen[bytes]:  # fmt: skip
        """A helper process of the benchmark (raw pipeline roles, Temporal's worker)."""
        return subprocess.Popen([sys.executable, "-m", module, *args],
                                env={**self.env, **(extra_env or {})})  # fmt: skip

    def redis(self) -> aioredis.Redis:
        return redis_client(self.settings)

    async def define(self, *definitions: dict[str, Any]) -> None:
        client = self.redis()
        try:
            store = WorkflowStore(client)
            for definition in definitions:
                workflow = parse_workflow(definition)
                now = datetime.now(UTC)
                try:
                    await store.save(workflow, create=True, now=now)
                except WorkflowExists:
                    await store.save(workflow, create=False, now=now)
        finally:
            await client.aclose()

    def start_worker(self, workload: str, *, timeout: float = 60,
                     extra_env: Mapping[str, str] | None = None
                     ) -> tuple[Any, dict[str, Any]]:  # fmt: skip
        ready = self.settings.home / f"worker-{workload}.ready"
        ready.unlink(missing_ok=True)
        log = open(self.settings.log_dir / f"worker-{workload}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.workers", workload, "--ready-file", str(ready)],
            env={**self.env, **(extra_env or {})}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._workers.append(process)
        self._worker_names[process.pid] = f"worker-{workload}"
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker {workload} did not start; see {log.name}")
            time.sleep(0.05)
        time.sleep(0.05)  # the file is written in one call; let it land
        return process, json.loads(ready.read_text())

    def stop_worker(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process in self._workers:
            self._workers.remove(process)
