"""Chaos: a steady load of ``chain`` runs while processes are killed, then the invariants.

    python -m benchmarks.chaos --minutes 10 [--rate 8] [--seed 7] [--every 2 6]

Starts its own stack on its own ports: Kafka, Redis, two engines, two webhook
executors (each also runs the entity executor), two Kafka workers (in one group
each, every process with its own static member id), the timer service, the
scheduler and the trigger matcher. It triggers ``chaos-chain`` runs by producing
``RunTriggered`` to the inbox (workflows in ``chaos_workflows.py``: each chain run's
entity write starts a ``chaos-on-item`` run, which ends on a webhook its deadline's
timer completes, and five schedules fire a tick a minute), and meanwhile, at random
moments, ``kill -9``s one process of a kind (engine, executor, worker: a random one
of the two; timers, scheduler, triggers, Redis, the broker) and restarts it, or stops
and restarts the broker gracefully (``kafka-stop``). Then it stops the load, waits
for the runs to settle and checks (``chaos_checks.py``): every run
COMPLETED/SUCCESS; no run waiting on nothing after any kill; no transition applied
twice; every webhook call and KAFKA handler call applied exactly once per node-run
attempt at the receiver that deduplicates on its ``Idempotency-Key`` (raw repeated
calls reported); each entity written and its event turned into one run; each
deadline's timer firing applied once; each schedule tick one run; no run nobody
started; dead letters only for the poison sent on purpose. It prints the counts and
exits non-zero if an invariant broke.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import shutil
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import chaos_checks
from benchmarks.chaos_handlers import RECEIVER_ENV
from benchmarks.chaos_receiver import Receiver
from benchmarks.chaos_report import Report
from benchmarks.chaos_workflows import (
    BLUEPRINT,
    BLUEPRINT_SCHEMA,
    CHAIN,
    WORK_PATH,
    all_workflows,
)
from switchyard.cli.stack import processes
from switchyard.cli.stack.full import engine_services, environment, local_settings, ops_url
from switchyard.cli.stack.kafka import KafkaBroker
from switchyard.cli.stack.launcher import Component, readiness
from switchyard.cli.stack.redis import RedisServer
from switchyard.cli.stack.services import PythonService
from switchyard.engine.machine.state import RunState
from switchyard.engine.store.client import connect, redis_client
from switchyard.engine.store.entities import EntityStore
from switchyard.engine.store.workflows import WorkflowStore
from switchyard.schemas import RunTriggered, encode, parse_workflow
from switchyard.schemas.entity_rules import BlueprintInput
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry

# "kafka" is a kill -9 of the broker (KRaft recovers from an unclean shutdown: the
# run proves we do too); "kafka-stop" is its graceful stop and restart.
KINDS = ("engine", "executor", "worker", "timers", "scheduler", "triggers", "redis", "kafka",
         "kafka-stop")  # fmt: skip
WORKFLOW_ID = CHAIN
POISON = b"\x00poison, on purpose #"
PAIRS = 2  # engines, executors and workers: two of each, in one group per kind


def free_port() -> int:
    """A free port below the ephemeral range. While Redis or Kafka is down, clients
    retry connecting many times a second; a connect whose ephemeral source port equals
    the (unused) destination port connects to itself and keeps the port, and the
    restarted server then can't bind it. Ports outside that range can't be taken so."""
    low, _ = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, max(20001, min(low, 32768)))
        if processes.port_bindable(port):
            return port
    raise RuntimeError("no free port below the ephemeral range")


def _executors(settings: Settings, env: dict[str, str]) -> list[Component]:
    """``executor-1`` .. ``executor-N`` in one group, each with its own static member id
    (as ``engine_services`` gives the engines) and ops port."""
    result: list[Component] = []
    for i in range(1, PAIRS + 1):
        name = f"executor-{i}"
        port = free_port()
        own = settings.model_copy(
            update={"executor_instance_id": f"{name}-{settings.executor_instance_id}",
                    "executor_ops_port": port}
        )  # fmt: skip
        own_env = {**env, "SWITCHYARD_EXECUTOR_INSTANCE_ID": str(own.executor_instance_id),
                   "SWITCHYARD_EXECUTOR_OPS_PORT": str(port)}  # fmt: skip
        result.append(
            PythonService(own, name, own_env, args=("executor",), ops_url=ops_url(own, "executor"))
        )
    return result


def _workers(settings: Settings, env: dict[str, str]) -> list[Component]:
    return [
        PythonService(
            settings, f"worker-{i}", env, ready_file=False,
            args=("worker", "run", "benchmarks.chaos_handlers:echo", "--node-type", "KAFKA",
                  "--session-timeout-ms", "6000", "--instance-id", f"chaos-worker-{i}"),
        )
        for i in range(1, PAIRS + 1)
    ]  # fmt: skip


class ChaosRun:
    """One chaos run on a stack of its own under ``home``."""

    # Whether the stack runs the scheduler and the trigger matcher: then the schedules
    # and the entity-event workflow are saved and their runs checked too (a subclass
    # with a stack of its own, as ``cluster_faults``, may run neither).
    drives_triggers = True
    receiver: Receiver

    def __init__(self, home: Path, *, rate: float, seed: int, say: Any = print) -> None:
        repo = Path(__file__).resolve().parents[1]
        self.say = say
        self.rate = rate
        self.random = random.Random(seed)
        self.receiver = Receiver()
        self.settings = local_settings(Settings(
            home=home, cache_home=repo / ".switchyard" / "cache",
            kafka_port=free_port(), kafka_controller_port=free_port(), redis_port=free_port(),
            bridge_port=free_port(), kafka_heap="384m", topic_prefix="chaos.",
            webhook_allow_hosts=["127.0.0.1/32"], template_workers=1, scheduler_poll_s=1.0,
            # Their /readyz tells when a restarted service consumes again.
            engine_ops_port=free_port(), timers_ops_port=free_port(),
            scheduler_ops_port=free_port(), triggers_ops_port=free_port(),
        ))  # fmt: skip
        env = {**environment(self.settings), "PYTHONPATH": str(repo),
               RECEIVER_ENV: self.receiver.url(WORK_PATH)}  # fmt: skip
        self.registry = TopicRegistry.from_settings(self.settings)

        def service(name: str) -> PythonService:
            return PythonService(self.settings, name, env, ops_url=ops_url(self.settings, name))

        services = [
            *engine_services(self.settings, env, PAIRS),
            *_executors(self.settings, env),
            *_workers(self.settings, env),
            *(service(name) for name in ("timers", "scheduler", "triggers")),
        ]
        self.components: dict[str, Component] = {
            "redis": RedisServer(self.settings),
            "kafka": KafkaBroker(self.settings),
            **{c.spec.name: c for c in services},
        }
        # Which processes a kill of each kind picks from.
        self.of_kind = {
            kind: [n for n in self.components if n == kind or n.startswith(f"{kind}-")]
            for kind in KINDS
        }
        self.of_kind["kafka-stop"] = ["kafka"]
        self._track()

    def _track(self) -> None:
        """What the load and the faults record for the checks (a subclass building a
        stack of its own calls this too)."""
        self.report = Report()
        self.triggered: list[str] = []
        self.saved_at = datetime.now(UTC)
        self.load_stopped_at = self.saved_at
        self.poison: dict[tuple[int, int], int] = {}  # inbox (partition, offset) -> n

    # -- the stack ---------------------------------------------------------------
    def _start(self, name: str) -> None:
        component = self.components[name]
        component.wait_ready(component.start())

    def up(self) -> None:
        for name in ("redis", "kafka"):
            self._start(name)
        asyncio.run(self._prepare())
        for name in self.components:
            if name not in {"redis", "kafka"}:
                self._start(name)

    async def _prepare(self) -> None:
        await ensure_topics(self.settings)
        client = redis_client(self.settings)
        try:
            await connect(client)
            now = datetime.now(UTC)
            body = BlueprintInput.model_validate(
                {"identifier": BLUEPRINT, "schema": BLUEPRINT_SCHEMA}
            )
            await EntityStore(client, None).create_blueprint(body, "chaos", now)  # type: ignore[arg-type]
            self.saved_at = datetime.now(UTC)
            for definition in all_workflows(self.receiver.url, self.drives_triggers):
                workflow = parse_workflow(definition)
                await WorkflowStore(client).save(workflow, create=True, now=self.saved_at)
        finally:
            await client.aclose()

    def down(self) -> None:
        for component in reversed(list(self.components.values())):
            component.stop()
        self.receiver.close()

    def kill(self, kind: str) -> None:
        """kill -9 one process of ``kind`` (``kafka-stop``: the broker's graceful stop)
        and start it again; blocks until it serves."""
        name = self.random.choice(self.of_kind[kind])
        component = self.components[name]
        started = time.monotonic()
        if kind == "kafka-stop":
            component.stop()
        else:
            pid = component.pid()
            if pid is None:
                raise RuntimeError(f"{name} is not running (pid file {component.spec.pid_file})")
            os.kill(pid, signal.SIGKILL)
            while processes.is_alive(pid):  # reaped: its sockets are closed
                time.sleep(0.02)
        self._start(name)
        back = time.monotonic() - started
        serving = self._until_ready(component, started)
        self.report.kills[kind] += 1
        self.report.killed[name if kind != "kafka-stop" else kind] += 1
        label = kind if kind.startswith("kafka") else name
        self.report.restarts.setdefault(label, []).append(serving or back)
        ready = f", consuming again in {serving:.1f} s" if serving is not None else ""
        self.say(f"  {label:<10} killed and back in {back:.1f} s{ready}")

    @staticmethod
    def _until_ready(component: Component, started: float, within: float = 90.0) -> float | None:
        """Seconds from the kill until the restarted service's /readyz passes (its
        consumer holds partitions again); None for a process without ops endpoints."""
        url = getattr(component, "ops_url", None)
        if not url:
            return None
        deadline = time.monotonic() + within
        while readiness(url) != "ready":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{component.spec.name} not ready {within:.0f} s after restart")
            time.sleep(0.05)
        return time.monotonic() - started

    # -- load and chaos ----------------------------------------------------------
    async def _load(self, until: float) -> None:
        async with EventProducer(self.settings) as producer:
            n = 0
            while time.monotonic() < until and not self._stop_load.is_set():
                run_id = "wfr_" + uuid.uuid4().hex[:16]
                event = RunTriggered.model_validate({
                    "runId": run_id, "workflowIdentifier": WORKFLOW_ID, "inputs": {"n": n},
                    "createdBy": "chaos", "triggeredAt": datetime.now(UTC),
                })  # fmt: skip
                await producer.send_and_wait(self.registry.inbox.name, run_id, encode(event))
                self.triggered.append(run_id)
                if n % 97 == 0:
                    await self._poison(producer, n)
                n += 1
                await asyncio.sleep(1 / self.rate)
        self.load_stopped_at = datetime.now(UTC)

    async def _poison(self, producer: EventProducer, n: int) -> None:
        """An undecodable record, numbered: where the broker put it is what its dead
        letter must name."""
        sent = await producer.send(self.registry.inbox.name, f"poison-{n}", POISON + b"%d" % n)
        metadata: Any = await sent
        self.poison[(metadata.partition, metadata.offset)] = n
        self.report.poison_sent += 1

    async def _chaos(
        self, until: float, interval: tuple[float, float], kinds: tuple[str, ...],
        max_kills: int | None,
    ) -> None:  # fmt: skip
        order: list[str] = []
        while True:
            await asyncio.sleep(self.random.uniform(*interval))
            done = max_kills is not None and sum(self.report.kills.values()) >= max_kills
            if time.monotonic() >= until or done:
                self._stop_load.set()
                return
            if not order:
                order = list(kinds)
                self.random.shuffle(order)
            await asyncio.to_thread(self.kill, order.pop())
            await asyncio.to_thread(self._check_running)
            await self._check_waits()

    async def run(
        self, seconds: float, interval: tuple[float, float], kinds: tuple[str, ...] = KINDS,
        settle: float = 120.0, max_kills: int | None = None,
    ) -> Report:  # fmt: skip
        """Load and kill for ``seconds`` (or until ``max_kills`` kills), then check."""
        started = time.monotonic()
        until = started + seconds
        self._stop_load = asyncio.Event()
        await asyncio.gather(self._load(until), self._chaos(until, interval, kinds, max_kills))
        self.report.runs = len(self.triggered)
        self.say(f"load stopped after {len(self.triggered)} runs; waiting for them to settle")
        await self._check_waits()
        states = await self._settle(settle)
        await asyncio.to_thread(self._check_running)
        await self._check(states)
        self.report.seconds = time.monotonic() - started
        return self.report

    def _check_running(self) -> None:
        """Every process runs: one that ended on its own (an error it did not survive)
        is a defect even if the runs came through without it."""
        for name, component in self.components.items():
            if component.pid() is None:
                self.report.exited.add(name)
                self.say(f"  {name} is not running (nobody killed it); starting it again")
                self._start(name)

    async def _check_waits(self) -> None:
        await chaos_checks.check_waits(self)

    async def _settle(self, within: float) -> dict[str, RunState]:
        return await chaos_checks.settle(self, within)

    async def _check(self, states: dict[str, RunState]) -> None:
        await chaos_checks.check(self, states)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=8.0, help="runs triggered per second")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--every",
        type=float,
        nargs=2,
        default=(2.0, 6.0),
        metavar=("MIN", "MAX"),
        help="seconds between kills (2 to 6: over 20 kills of each kind in 30 minutes)",
    )
    parser.add_argument("--home", type=Path, default=Path(".switchyard/chaos"))
    args = parser.parse_args()  # fmt: skip
    # The load's producer logs each refused connect while the broker is down, thousands
    # a kill; the run's lines say what happened.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    # A stack of its own each time: a former run's Redis holds its workflows and runs.
    shutil.rmtree(args.home, ignore_errors=True)
    chaos = ChaosRun(args.home.resolve(), rate=args.rate, seed=args.seed)
    print(f"chaos: {args.minutes:g} min at {args.rate:g} runs/s, a kill every "
          f"{args.every[0]:g} to {args.every[1]:g} s; stack under {args.home}",
          flush=True)  # fmt: skip
    chaos.say = lambda line: print(line, flush=True)
    try:
        chaos.up()
        # A long run leaves a backlog: settling ends as soon as every run completed.
        report = asyncio.run(chaos.run(args.minutes * 60, tuple(args.every), settle=300.0))
    finally:
        chaos.down()
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
