"""``switchyard worker run module:handler``: a worker of the SDK from the command line.

    switchyard worker run shop.deploy:handle --node-type KAFKA [--node deploy] [--workflow w]
    switchyard worker run shop.actions:handle --installation-id gh-1 [--api-url URL]

KAFKA consumes node-run requests and reports on the inbox; ``--installation-id``
(node type INTEGRATION_ACTION) claims and acks over the runs API with the client
credentials of ``--client-id``/``--client-secret`` (or SWITCHYARD_CLIENT_ID and
SWITCHYARD_CLIENT_SECRET). SIGTERM or SIGINT: stop taking work, let in-flight
handlers finish within ``--grace`` seconds, commit, exit. ``--metrics-port N`` serves
the worker's ``/metrics``, ``/healthz`` and ``/readyz`` on port N (off by default).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from typing import Any, Protocol

from switchyard.cli import runtime
from switchyard.consumers import ClaimWorker, Handler, KafkaWorker, RunsClient
from switchyard.schemas.settings import Settings
from switchyard.topics.telemetry.logs import configure_logging, secret_values
from switchyard.topics.telemetry.metrics import set_enabled as set_metrics_enabled
from switchyard.topics.telemetry.tracing import configure_tracing

log = logging.getLogger("switchyard.worker")


class _Runnable(Protocol):
    async def start(self) -> None: ...
    async def run(self) -> None: ...
    def stop_soon(self) -> None: ...
    async def stop(self) -> None: ...


def load_handler(target: str) -> Handler:
    """``package.module:function`` (attributes may be dotted), imported from the cwd too."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise SystemExit(f"switchyard: handler must look like module:function (got {target!r})")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: the project's own modules
    found: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part)
    if not callable(found):
        raise SystemExit(f"switchyard: {target} is not callable")
    handler: Handler = found
    return handler


async def _serve(worker: _Runnable, grace: float) -> None:
    await worker.start()
    signalled = asyncio.Event()

    def on_signal() -> None:
        signalled.set()
        worker.stop_soon()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    running = asyncio.create_task(worker.run())
    waiting = asyncio.create_task(signalled.wait())
    try:
        done, _ = await asyncio.wait({running, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if running in done:
            running.result()  # a worker that ends by itself failed: say why
        else:
            try:
                await asyncio.wait_for(running, grace)
            except TimeoutError:
                log.warning("handlers still running after %g s; leaving them for redelivery", grace)
    finally:
        waiting.cancel()
        await worker.stop()


async def _kafka(settings: Settings, handler: Handler, args: argparse.Namespace) -> None:
    worker: KafkaWorker[Any] = KafkaWorker(
        settings, handler, node_identifiers=args.node, workflows=args.workflow, group=args.group,
        concurrency=args.concurrency, session_timeout_ms=args.session_timeout_ms,
        instance_id=args.instance_id, ops_port=args.metrics_port,
    )  # fmt: skip
    log.info("worker consuming %s as group %s", worker.topic, worker.group)
    await _serve(worker, args.grace)


async def _claims(settings: Settings, handler: Handler, args: argparse.Namespace) -> None:
    url = args.api_url or f"http://{settings.bridge_host}:{settings.bridge_port}"
    if not args.client_id or not args.client_secret:
        raise SystemExit("switchyard: claim/ack needs --client-id and --client-secret "
                         "(or SWITCHYARD_CLIENT_ID / SWITCHYARD_CLIENT_SECRET)")  # fmt: skip
    async with RunsClient(url, args.client_id, args.client_secret) as client:
        worker = ClaimWorker(client, args.installation_id, handler,
                             concurrency=args.concurrency,
                             visibility_timeout_ms=args.visibility_timeout_ms,
                             ops_port=args.metrics_port, ops_host=settings.ops_host)  # fmt: skip
        log.info("worker claiming for installation %s at %s", args.installation_id, url)
        await _serve(worker, args.grace)


def worker_run(settings: Settings, args: argparse.Namespace) -> int:
    configure_logging(settings.log_format, args.log_level or settings.log_level,
                      process="worker", secrets=secret_values(settings))  # fmt: skip
    if args.installation_id and args.node_type != "INTEGRATION_ACTION":
        args.node_type = "INTEGRATION_ACTION"
    if args.node_type == "INTEGRATION_ACTION" and not args.installation_id:
        raise SystemExit("switchyard: --node-type INTEGRATION_ACTION needs --installation-id")
    handler = load_handler(args.handler)
    set_metrics_enabled(settings.metrics_enabled)
    serve = _claims if args.node_type == "INTEGRATION_ACTION" else _kafka
    configure_tracing("worker")
    runtime.run(serve(settings, handler, args), settings)
    return 0


def add_worker_commands(groups: Any) -> None:
    """Add ``worker run`` to the CLI's subcommands (``groups`` from add_subparsers)."""
    worker = groups.add_parser("worker", help="run a worker of the SDK for a handler")
    actions = worker.add_subparsers(dest="command", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="consume node runs with module:handler",
                             description=__doc__,
                             formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    run.add_argument("handler", help="module:function, an async handler")
    run.add_argument("--node-type", choices=("KAFKA", "INTEGRATION_ACTION"), default="KAFKA")
    run.add_argument("--node", action="append", default=[], help="only these node identifiers")
    run.add_argument("--workflow", action="append", default=[], help="only these workflows")
    run.add_argument("--group", help="Kafka consumer group (default: named by the filters)")
    run.add_argument("--concurrency", type=int, default=16, help="handlers at once")
    run.add_argument("--session-timeout-ms", type=int, default=10_000,
                     help="how soon a dead worker's partitions move to another")  # fmt: skip
    run.add_argument(
        "--instance-id",
        help="static group membership: a restart with the same "
        "id rejoins at once (unique per worker process)",
    )
    run.add_argument("--installation-id", help="claim/ack INTEGRATION_ACTION node runs for it")
    run.add_argument("--api-url", help="the runs API (default: the settings' bridge address)")
    run.add_argument("--client-id", default=os.environ.get("SWITCHYARD_CLIENT_ID"))
    run.add_argument("--client-secret", default=os.environ.get("SWITCHYARD_CLIENT_SECRET"))
    run.add_argument("--visibility-timeout-ms", type=int, default=60_000)
    run.add_argument("--grace", type=float, default=30.0, help="seconds to drain on SIGTERM")
    run.add_argument("--metrics-port", type=int, default=0,
                     help="serve /metrics, /healthz, /readyz on this port "
                     "(on SWITCHYARD_OPS_HOST; default 0: not served)")  # fmt: skip
    run.add_argument("--log-level", help="default: SWITCHYARD_LOG_LEVEL (INFO)")
    run.set_defaults(run=worker_run)
