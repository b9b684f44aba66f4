"""Faults under load on a cluster stack, then the chaos run's invariants.

    python -m benchmarks.cluster_faults [--rate 10] [--home .switchyard/cluster-faults]

Starts, on ports of its own, what ``switchyard stack up --cluster --engines 2`` starts:
three KRaft brokers (topics with three copies, ``min.insync.replicas=2``), a Redis
Cluster of three masters with a replica each, two engines in one consumer group (each
commits its offsets only once a replica has acknowledged the batch's writes: WAIT, one
replica), the webhook executor, the timer service and a Kafka worker. Under a steady
load of ``chain`` runs (the chaos run's workflow: a CONDITION, a KAFKA node with a
deadline, a WEBHOOK), one after the other:

1. ``kill -9`` one broker (not restarted: two brokers keep every partition writable);
2. ``kill -9`` the Redis master of partition 0's slot; its replica takes over, and the
   old master is started again, to rejoin as the new one's replica (without a replica
   the WAIT can never be met: the engines stop committing and exit, by design);
3. ``kill -9`` one of the two engines (not restarted: the other takes its partitions).

Meanwhile it supervises the other processes as an orchestrator would: one that exits
on its own is started again, and counted (an engine exits when WAIT finds its batch's
writes on a master that failed over: its offsets stay uncommitted, its batches are
redelivered). Then the load stops and every run must settle: 0 lost, 0 applied twice
(one completion per node run, one event per seq, one node-run id per node), 0 stuck.
It prints the counts and exits non-zero if an invariant broke.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from benchmarks.chaos import ChaosRun
from benchmarks.chaos_handlers import RECEIVER_ENV
from benchmarks.chaos_receiver import Receiver
from benchmarks.chaos_report import Report
from benchmarks.chaos_workflows import WORK_PATH
from switchyard.cli.stack import processes
from switchyard.cli.stack.full import engine_services, environment, local_settings
from switchyard.cli.stack.launcher import Component, infrastructure
from switchyard.cli.stack.profile import StackProfile
from switchyard.cli.stack.redis_cluster import cluster_info, form_cluster, node_ports
from switchyard.cli.stack.services import PythonService
from switchyard.engine.store.slots import partition_tag
from switchyard.schemas.settings import Settings
from switchyard.topics.registry import TopicRegistry

FAULTS = ("kafka", "redis-master", "engine")
ENGINES = 2


def free_base(rng: random.Random) -> int:
    """A port base whose cluster ports (base + 0..60, the Redis buses base + 1040..1045)
    are all free."""
    for _ in range(200):
        # Below 32768: the ports above are clients' source ports (ip_local_port_range).
        base = rng.randrange(20_000, 31_000, 100)
        offsets = (*range(61), *range(1040, 1046))
        if all(processes.port_bindable(base + offset) for offset in offsets):
            return base
    raise RuntimeError("no free port range for the cluster stack")


class ClusterFaults(ChaosRun):
    """The chaos run's load and checks on a cluster stack of its own under ``home``."""

    drives_triggers = False  # no scheduler nor trigger matcher on this stack

    def __init__(self, home: Path, *, rate: float, seed: int = 5, say: Any = print) -> None:
        # Not ChaosRun.__init__: that one builds the single-node stack.
        repo = Path(__file__).resolve().parents[1]
        self.say = say
        self.rate = rate
        self.random = random.Random(seed)
        self.receiver = Receiver()
        base = free_base(random.Random())
        self.settings = local_settings(
            Settings(
                home=home, cache_home=repo / ".switchyard" / "cache",
                kafka_port=base, kafka_controller_port=base + 20, redis_port=base + 40,
                bridge_port=base + 50, topic_prefix="faults.",
                webhook_allow_hosts=["127.0.0.1/32"], template_workers=1,
                redis_wait_replicas=1,
                engine_ops_port=0, executor_ops_port=0, timers_ops_port=0,
                scheduler_ops_port=0, triggers_ops_port=0,
            ),
            StackProfile(cluster=True, engines=ENGINES),
        )  # fmt: skip
        env = {**environment(self.settings), "PYTHONPATH": str(repo),
               RECEIVER_ENV: self.receiver.url(WORK_PATH)}  # fmt: skip
        self.registry = TopicRegistry.from_settings(self.settings)
        self.infra: list[Component] = infrastructure(self.settings, cluster=True)
        services: list[Component] = engine_services(self.settings, env, ENGINES)
        services += [
            PythonService(self.settings, "executor", env),
            PythonService(self.settings, "timers", env),
            PythonService(
                self.settings, "worker", env, ready_file=False,
                args=("worker", "run", "benchmarks.chaos_handlers:echo", "--node-type", "KAFKA",
                      "--session-timeout-ms", "6000", "--instance-id", "faults-worker"),
            ),
        ]  # fmt: skip
        self.components = {c.spec.name: c for c in [*self.infra, *services]}
        self.services = [c.spec.name for c in services]
        self._track()
        self.down_on_purpose: set[str] = set()
        self.restarts: Counter[str] = Counter()

    # -- the stack ---------------------------------------------------------------
    def up(self) -> None:
        for component in self.infra:
            component.wait_ready(component.start())
        form_cluster(self.settings, self.say)
        asyncio.run(self._prepare())
        for name in self.services:
            self._start(name)

    def _kill(self, name: str) -> None:
        pid = self.components[name].pid()
        if pid is None:
            raise RuntimeError(f"{name} is not running")
        os.kill(pid, signal.SIGKILL)
        while processes.is_alive(pid):  # reaped: its sockets are closed
            time.sleep(0.02)

    def _master_of_partition_0(self) -> str:
        """The redis-i node that serves partition 0's slot now."""
        tag = partition_tag(0, self.registry.inbox.partitions)
        for index, port in enumerate(node_ports(self.settings), start=1):
            if self.components[f"redis-{index}"].pid() is None:
                continue
            client = self._node(port)
            try:
                slot = int(client.cluster("KEYSLOT", tag))
                owner = client.cluster("SLOTS")
            finally:
                client.close()
            for start, end, primary, *_ in owner:  # [start, end, [host, port, id], replicas…]
                if int(start) <= slot <= int(end):
                    master_port = int(primary[1])
                    return f"redis-{node_ports(self.settings).index(master_port) + 1}"
        raise RuntimeError("no node answers CLUSTER SLOTS")

    @staticmethod
    def _node(port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2.0, decode_responses=True)

    def fault(self, kind: str) -> None:
        """One fault; blocks until the cluster serves again (or, for a process not
        restarted, at once)."""
        started = time.monotonic()
        if kind == "kafka":
            name = "kafka-2"
            self.down_on_purpose.add(name)
            self._kill(name)
        elif kind == "engine":
            name = f"engine-{ENGINES}"
            self.down_on_purpose.add(name)
            self._kill(name)
        else:
            name = self._master_of_partition_0()
            self.down_on_purpose.add(name)
            self._kill(name)
            self._until_failed_over(name)
            self._start(name)  # rejoins, from its nodes.conf, as the new master's replica
            self.down_on_purpose.discard(name)
            self._until_replicated()
        self.report.kills[kind] += 1
        self.say(f"  {kind:<12} {name} killed; serving again in {time.monotonic() - started:.1f} s")

    def _until_failed_over(self, killed: str, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                if self._master_of_partition_0() != killed and self._cluster_ok():
                    return
            except (redis.RedisError, RuntimeError):  # a node mid-failover may not answer
                pass
            time.sleep(0.2)
        raise RuntimeError(f"no failover of {killed} within {within:.0f} s")

    def _cluster_ok(self) -> bool:
        live = [
            port for index, port in enumerate(node_ports(self.settings), start=1)
            if self.components[f"redis-{index}"].pid() is not None
        ]  # fmt: skip
        return all(cluster_info(port).get("cluster_state") == "ok" for port in live)

    def _until_replicated(self, within: float = 60.0) -> None:
        """Every master has a replica online again (the WAIT can be met)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            counts = []
            for port in node_ports(self.settings):
                client = self._node(port)
                try:
                    info = dict(client.info("replication"))
                except redis.RedisError:
                    info = {}
                finally:
                    client.close()
                if info.get("role") == "master":
                    counts.append(int(info.get("connected_slaves", 0)))
            if len(counts) == 3 and min(counts) >= 1:
                return
            time.sleep(0.2)
        raise RuntimeError(f"masters without a replica after {within:.0f} s")

    async def _supervise(self, stop: asyncio.Event) -> None:
        """Start again any service that exited on its own (an orchestrator's restart)."""
        while not stop.is_set():
            for name in self.services:
                if name in self.down_on_purpose or self.components[name].pid() is not None:
                    continue
                self.restarts[name] += 1
                self.say(f"  {name} exited on its own; starting it again")
                await asyncio.to_thread(self._start, name)
            await asyncio.sleep(1.0)

    async def _faults(self, gap: float) -> None:
        for kind in FAULTS:
            await asyncio.sleep(gap)
            await asyncio.to_thread(self.fault, kind)
            await self._check_waits()
        await asyncio.sleep(gap)
        self._stop_load.set()

    async def run_faults(self, gap: float = 12.0, settle: float = 180.0) -> Report:
        """Load throughout; the three faults ``gap`` seconds apart; then the checks."""
        started = time.monotonic()
        self._stop_load = asyncio.Event()
        stop = asyncio.Event()
        supervisor = asyncio.create_task(self._supervise(stop))
        try:
            await asyncio.gather(self._load(time.monotonic() + 3600), self._faults(gap))
            self.report.runs = len(self.triggered)
            self.say(f"load stopped after {len(self.triggered)} runs; waiting for them to settle")
            await self._check_waits()
            states = await self._settle(settle)
            await self._check(states)
        finally:
            stop.set()
            await supervisor
        self.report.seconds = time.monotonic() - started
        return self.report

    def down(self) -> None:
        for name in reversed(list(self.components)):
            self.components[name].stop()
        self.receiver.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=10.0, help="runs triggered per second")
    parser.add_argument("--gap", type=float, default=12.0, help="seconds between faults")
    parser.add_argument("--home", type=Path, default=Path(".switchyard/cluster-faults"))
    args = parser.parse_args()
    # The load's producer logs every retry to the killed broker until the metadata has
    # moved its partitions' leaders: the report says what matters.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    faults = ClusterFaults(args.home.resolve(), rate=args.rate)
    print(f"cluster faults at {args.rate:g} runs/s, {args.gap:g} s apart; stack under {args.home}")
    try:
        faults.up()
        report = asyncio.run(faults.run_faults(args.gap))
    finally:
        faults.down()
    print("\n".join(report.lines()))
    print(f"restarted        {dict(faults.restarts) or 'none'}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
