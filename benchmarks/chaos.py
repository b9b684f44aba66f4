"""Chaos: a steady load of ``chain`` runs while processes are killed, then the invariants.

    python -m benchmarks.chaos --minutes 10 [--rate 20] [--seed 7]

Starts its own stack (Kafka, Redis, engine, webhook executor, a Kafka worker) on its own
ports, triggers runs by producing ``RunTriggered`` to the inbox, and meanwhile, at
random moments: ``kill -9`` the engine, the executor, the timer service and the worker
(each is restarted), ``kill -9`` Redis (restarted from its AOF), ``kill -9`` the broker
(restarted: KRaft recovers its logs from an unclean shutdown), and stops and restarts
the broker gracefully. Then it stops the load, waits for the runs to settle and checks:
every run COMPLETED/SUCCESS (or waiting, with the node it waits on named); after every
kill, no run that is not COMPLETED waits on nothing (its ``waitingOn``); no node run
completed twice (from the run-events topic); one node-run id per node of a run (from the
node-run-requests topic); the dead-letter topic holds only the poison it sent on
purpose. It prints the counts and exits non-zero if an invariant broke.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from switchyard.cli.stack import processes
from switchyard.cli.stack.full import environment, local_settings, ops_url
from switchyard.cli.stack.kafka import KafkaBroker
from switchyard.cli.stack.launcher import Component, readiness
from switchyard.cli.stack.redis import RedisServer
from switchyard.cli.stack.services import PythonService
from switchyard.engine.machine import waits
from switchyard.engine.machine.graph import Graph
from switchyard.engine.machine.state import RunState
from switchyard.engine.store.client import connect, redis_client
from switchyard.engine.store.runs import RunStore
from switchyard.engine.store.workflows import WorkflowStore
from switchyard.schemas import RunTriggered, encode, parse_workflow
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry

# "kafka" is a kill -9 of the broker (KRaft recovers from an unclean shutdown: the
# run proves we do too); "kafka-stop" is its graceful stop and restart.
KINDS = ("engine", "executor", "worker", "timers", "redis", "kafka", "kafka-stop")
WORKFLOW_ID = "chaos-chain"
POISON = b"\x00poison, on purpose"


def chain_workflow(hook_url: str) -> dict[str, Any]:
    """trigger → CONDITION → KAFKA (worker) → WEBHOOK (executor), inputs templated along."""
    return {
        "identifier": WORKFLOW_ID,
        "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {
                "properties": {"n": {"type": "number"}}, "required": ["n"]}}},
            {"identifier": "check", "config": {"type": "CONDITION", "outlets": [
                {"identifier": "go", "title": "Go", "expression": ".outputs.trigger.n >= 0"}]}},
            # A deadline that never passes here: every run arms a timer and cancels it.
            {"identifier": "work", "config": {"type": "KAFKA", "timeoutSeconds": 900,
                                              "payload": {"n": "{{ .outputs.trigger.n }}"}}},
            {"identifier": "notify", "config": {
                "type": "WEBHOOK", "url": hook_url, "method": "POST",
                "body": {"n": "{{ .outputs.work.echo.n }}"}}},
        ],
        "connections": [
            {"sourceIdentifier": "trigger", "targetIdentifier": "check"},
            {"sourceIdentifier": "check", "targetIdentifier": "work",
             "sourceOutletIdentifier": "go"},
            {"sourceIdentifier": "work", "targetIdentifier": "notify"},
        ],
    }  # fmt: skip


def free_port() -> int:
    """A free port below the ephemeral range. While Redis or Kafka is down, clients
    retry connecting many times a second; a connect whose ephemeral source port equals
    the (unused) destination port connects to itself and keeps the port, and the
    restarted server then can't bind it. Ports outside that range can't be taken so."""
    low, _ = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, max(20001, min(low, 32768)))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


@dataclass
class Report:
    """What a chaos run did and found."""

    runs: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    completed: int = 0
    lost: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    stuck: dict[str, list[str]] = field(default_factory=dict)
    # Runs seen not COMPLETED with an empty waitingOn, at any check during the chaos.
    waiting_on_nothing: set[str] = field(default_factory=set)
    wait_checks: int = 0
    duplicated: list[str] = field(default_factory=list)
    conflicting_ids: list[str] = field(default_factory=list)
    unexpected_dead_letters: list[str] = field(default_factory=list)
    poison_sent: int = 0
    # Poison records dead-lettered, by their inbox partition and offset; and letters
    # published again for one of them (the outbox publishes at least once: an engine
    # killed between the publish and the outbox's clear leaves the step, which is
    # published again, byte for byte, by whoever takes the partition).
    poison_dead_lettered: int = 0
    poison_letters_repeated: int = 0
    webhook_calls: int = 0
    seconds: float = 0.0
    # Seconds from each kill until the process served again (a service: its /readyz).
    restarts: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.failed or self.stuck or self.waiting_on_nothing
                    or self.duplicated
                    or self.conflicting_ids or self.unexpected_dead_letters
                    or self.poison_dead_lettered != self.poison_sent)  # fmt: skip

    def lines(self) -> list[str]:
        kills = ", ".join(f"{k} {n}" for k, n in sorted(self.kills.items())) or "none"
        return [
            f"runs triggered   {self.runs} in {self.seconds:.0f} s",
            f"kills            {kills}",
            f"completed        {self.completed}",
            f"lost             {len(self.lost)} {self.lost[:5]}",
            f"failed           {len(self.failed)} {self.failed[:5]}",
            f"stuck            {len(self.stuck)} {dict(list(self.stuck.items())[:5])}",
            f"waiting on none  {len(self.waiting_on_nothing)} in {self.wait_checks} checks "
            f"{sorted(self.waiting_on_nothing)[:5]}",
            f"duplicated       {len(self.duplicated)} {self.duplicated[:5]}",
            f"conflicting ids  {len(self.conflicting_ids)} {self.conflicting_ids[:5]}",
            f"dead letters     poison {self.poison_dead_lettered}/{self.poison_sent} "
            f"({self.poison_letters_repeated} published again), "
            f"unexpected {len(self.unexpected_dead_letters)} {self.unexpected_dead_letters[:3]}",
            f"webhook calls    {self.webhook_calls} (at least once: restarts may repeat a call)",
            "restart (max s)  "
            + (", ".join(f"{k} {max(v):.1f}" for k, v in sorted(self.restarts.items())) or "none"),
            "RESULT           " + ("OK" if self.ok else "INVARIANT BROKEN"),
        ]


class _Hook:
    """The webhook target: counts calls, answers 200."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        calls = self.calls = Counter[str]()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                calls[body.decode(errors="replace")] += 1
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_: Any) -> None:
                return

        # A backlog of 5 (the default) resets connections when a restarted executor
        # sends its backlog at once; a real receiver listens with more.
        ThreadingHTTPServer.request_queue_size = 256
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ChaosRun:
    """One chaos run on a stack of its own under ``home``."""

    def __init__(self, home: Path, *, rate: float, seed: int, say: Any = print) -> None:
        repo = Path(__file__).resolve().parents[1]
        self.say = say
        self.rate = rate
        self.random = random.Random(seed)
        self.hook = _Hook()
        self.settings = local_settings(Settings(
            home=home, cache_home=repo / ".switchyard" / "cache",
            kafka_port=free_port(), kafka_controller_port=free_port(), redis_port=free_port(),
            bridge_port=free_port(), kafka_heap="384m", topic_prefix="chaos.",
            webhook_allow_hosts=["127.0.0.1/32"], template_workers=1,
            # Their /readyz tells when a restarted service consumes again.
            engine_ops_port=free_port(), executor_ops_port=free_port(),
            timers_ops_port=free_port(), scheduler_ops_port=0, triggers_ops_port=0,
        ))  # fmt: skip
        env = {**environment(self.settings), "PYTHONPATH": str(repo)}
        self.registry = TopicRegistry.from_settings(self.settings)

        def service(name: str) -> PythonService:
            return PythonService(self.settings, name, env, ops_url=ops_url(self.settings, name))

        self.components: dict[str, Component] = {
            "redis": RedisServer(self.settings),
            "kafka": KafkaBroker(self.settings),
            "engine": service("engine"),
            "executor": service("executor"),
            "timers": service("timers"),
            "worker": PythonService(
                self.settings, "worker", env, ready_file=False,
                args=("worker", "run", "benchmarks.chaos_handlers:echo", "--node-type", "KAFKA",
                      "--session-timeout-ms", "6000", "--instance-id", "chaos-worker"),
            ),
        }  # fmt: skip
        self.report = Report()
        self.triggered: list[str] = []

    # -- the stack ---------------------------------------------------------------
    def _start(self, name: str) -> None:
        component = self.components[name]
        component.wait_ready(component.start())

    def up(self) -> None:
        for name in ("redis", "kafka"):
            self._start(name)
        asyncio.run(self._prepare())
        for name in ("engine", "executor", "timers", "worker"):
            self._start(name)

    async def _prepare(self) -> None:
        await ensure_topics(self.settings)
        client = redis_client(self.settings)
        try:
            await connect(client)
            workflow = parse_workflow(chain_workflow(self.hook.url))
            await WorkflowStore(client).save(workflow, create=True, now=datetime.now(UTC))
        finally:
            await client.aclose()

    def down(self) -> None:
        for component in reversed(list(self.components.values())):
            component.stop()
        self.hook.close()

    def kill(self, kind: str) -> None:
        """kill -9 (``kafka-stop``: the broker's graceful stop) and start again; blocks
        until it serves."""
        name = "kafka" if kind == "kafka-stop" else kind
        component = self.components[name]
        started = time.monotonic()
        if kind == "kafka-stop":
            component.stop()
        else:
            pid = component.pid()
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                while processes.is_alive(pid):  # reaped: its sockets are closed
                    time.sleep(0.02)
            else:
                raise RuntimeError(f"{kind} is not running (pid file {component.spec.pid_file})")
        self._start(name)
        back = time.monotonic() - started
        serving = self._until_ready(component, started)
        self.report.kills[kind] += 1
        self.report.restarts.setdefault(kind, []).append(serving or back)
        ready = f", consuming again in {serving:.1f} s" if serving is not None else ""
        self.say(f"  {kind:<10} killed and back in {back:.1f} s{ready}")

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
                    key = f"poison-{n}"
                    await producer.send_and_wait(self.registry.inbox.name, key, POISON)
                    self.report.poison_sent += 1
                n += 1
                await asyncio.sleep(1 / self.rate)

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
        await self._check(states)
        self.report.seconds = time.monotonic() - started
        return self.report

    # -- the invariants ----------------------------------------------------------
    async def _check_waits(self) -> None:
        """Every run not COMPLETED names what it waits on (SPEC §7), even mid-chaos."""
        graph = Graph.of(parse_workflow({**chain_workflow(self.hook.url), "version": 1}))
        client = redis_client(self.settings)
        try:
            await connect(client)
            states = await self._states(RunStore(client))
        except Exception as error:  # Redis may be the one just killed: the next check
            self.say(f"  waits check skipped ({error!r})")
            return
        finally:
            await client.aclose()
        self.report.wait_checks += 1
        self.report.waiting_on_nothing.update(
            run_id for run_id, state in states.items()
            if state.status != "COMPLETED" and not waits(state, graph)
        )  # fmt: skip

    async def _states(self, store: RunStore) -> dict[str, RunState]:
        found: dict[str, RunState] = {}
        for i in range(0, len(self.triggered), 500):
            stored = await store.load(self.triggered[i : i + 500])
            found.update({run_id: s.state for run_id, s in stored.items()})
        return found

    async def _settle(self, within: float) -> dict[str, RunState]:
        client = redis_client(self.settings)
        try:
            await connect(client)
            deadline = time.monotonic() + within
            while True:
                states = await self._states(RunStore(client))
                done = sum(s.status == "COMPLETED" for s in states.values())
                if done == len(self.triggered) or time.monotonic() > deadline:
                    return states
                await asyncio.sleep(0.5)
        finally:
            await client.aclose()

    async def _check(self, states: dict[str, RunState]) -> None:
        report = self.report
        for run_id in self.triggered:
            state = states.get(run_id)
            if state is None:
                report.lost.append(run_id)
            elif state.status != "COMPLETED":
                waiting = [nr.node for nr in state.node_runs if nr.status == "IN_PROGRESS"]
                report.stuck[run_id] = waiting
            elif state.result != "SUCCESS":
                report.failed.append(f"{run_id}:{state.result}")
            else:
                report.completed += 1
        await self._check_topics()
        report.webhook_calls = sum(self.hook.calls.values())

    async def _check_topics(self) -> None:
        from switchyard.topics.reader import read_topic

        brokers = self.settings  # its TLS/SASL too
        seqs: dict[tuple[str, int], set[bytes]] = defaultdict(set)
        completions: dict[str, set[int]] = defaultdict(set)
        for record in await read_topic(brokers, self.registry.run_events.name):
            event = orjson.loads(record.value)
            seqs[(event["runId"], event["seq"])].add(record.value)
            if event["kind"] == "nodeRun.completed":
                completions[event["nodeRunId"]].add(event["seq"])
        self.report.duplicated += [f"{r}#{s}" for (r, s), v in seqs.items() if len(v) > 1]
        self.report.duplicated += [nr for nr, s in completions.items() if len(s) > 1]
        ids: dict[tuple[str, str], set[str]] = defaultdict(set)
        for record in await read_topic(brokers, self.registry.node_run_requests.name):
            context = orjson.loads(record.value)["context"]
            ids[(context["workflowRunId"], context["nodeIdentifier"])].add(context["nodeRunId"])
        self.report.conflicting_ids += [f"{r}/{n}" for (r, n), v in ids.items() if len(v) > 1]
        poison: dict[tuple[int, int], bytes] = {}
        for record in await read_topic(brokers, self.registry.dead_letter.name):
            letter = orjson.loads(record.value)
            if "poison, on purpose" in letter["value"]:
                source = (letter["partition"], letter["offset"])
                first = poison.setdefault(source, record.value)
                if first is not record.value:
                    self.report.poison_letters_repeated += 1
                    if first != record.value:  # decided twice, not published twice
                        self.report.duplicated.append(f"dead letter of {source}")
                self.report.poison_dead_lettered = len(poison)
            else:
                self.report.unexpected_dead_letters.append(f"{letter['code']}: {letter['reason']}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=20.0, help="runs triggered per second")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--every",
        type=float,
        nargs=2,
        default=(5.0, 15.0),
        metavar=("MIN", "MAX"),
        help="seconds between kills",
    )
    parser.add_argument("--home", type=Path, default=Path(".switchyard/chaos"))
    args = parser.parse_args()  # fmt: skip
    chaos = ChaosRun(args.home.resolve(), rate=args.rate, seed=args.seed)
    print(f"chaos: {args.minutes:g} min at {args.rate:g} runs/s, a kill every "
          f"{args.every[0]:g} to {args.every[1]:g} s; stack under {args.home}")  # fmt: skip
    try:
        chaos.up()
        report = asyncio.run(chaos.run(args.minutes * 60, tuple(args.every)))
    finally:
        chaos.down()
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
