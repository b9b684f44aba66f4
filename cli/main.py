"""The ``switchyard`` command.

    switchyard stack up        start Kafka (KRaft), Redis, the topics, the engine, the webhook
                               executor, the timer service, the scheduler, the trigger
                               matcher and the API locally
                               (--infra-only: Kafka and Redis; --cluster: three brokers
                               and a six-node Redis Cluster; --engines N)
    switchyard stack status    what runs where, with resident memory
    switchyard stack down      stop what `stack up` started
    switchyard auth init       write a dev auth file and print its credentials
    switchyard demo            a sample workflow end to end through the API
    switchyard engine          the engine in the foreground (also: executor, timers,
                               scheduler, triggers, bridge)
    switchyard topics ensure   create the registry's topics (idempotent)
    switchyard topics list     the registry: name, key, value, partitions, retention
    switchyard state upgrade   migrate the stored runs to this release's formats
                               (--dry-run; also: state status)

Talking to the API (README "CLI"; exit codes in ``switchyard.cli.exits``):

    switchyard login           check client credentials and save them as a profile
    switchyard workflows       apply -f FILE | list | get ID [--version N] | delete ID
    switchyard runs            trigger WORKFLOW [--input k=v] [--wait] | list | get RUN |
                               logs RUN [--follow] | watch RUN | cancel RUN [--force] |
                               rerun RUN [--from NODE]

Settings come from the environment (``SWITCHYARD_*``); see ``switchyard.schemas.settings``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from switchyard.bridge.credentials import write_dev_config
from switchyard.cli import bridge_group, services
from switchyard.cli.demo import DemoError, next_steps, run_demo
from switchyard.cli.run_commands import add_run_commands
from switchyard.cli.session import common_options
from switchyard.cli.stack import profile as stack_profile
from switchyard.cli.stack.agent import agent_environment, new_agent_credential, write_agent_env
from switchyard.cli.stack.errors import StackError
from switchyard.cli.stack.full import dev_credentials, full_stack, local_settings
from switchyard.cli.stack.launcher import Stack
from switchyard.cli.stack.profile import MAX_ENGINES, StackProfile
from switchyard.cli.stack.redis_cluster import form_cluster
from switchyard.cli.stack.secure import StackSecrets, stack_secrets
from switchyard.cli.state_commands import add_state_commands
from switchyard.cli.worker import add_worker_commands
from switchyard.cli.workflow_commands import add_workflow_commands
from switchyard.engine.store.upgrade import StoreRefused
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import TopicMismatch, ensure_topics
from switchyard.topics.registry import TopicRegistry

Command = Callable[[Settings, argparse.Namespace], int]


def _say(message: str) -> None:
    print(message, flush=True)


def stack_up(settings: Settings, args: argparse.Namespace) -> int:
    started = time.monotonic()
    profile = StackProfile(cluster=args.cluster, engines=args.engines, secure=args.secure)
    _check_profile(settings, profile)
    local = local_settings(settings, profile)
    infra, services = full_stack(local, profile)
    stack_profile.save(settings, profile)
    infra.up(_say)
    secrets = stack_secrets(local.home) if profile.secure else None
    if profile.cluster:
        form_cluster(local, _say, secrets=secrets)
    report = asyncio.run(ensure_topics(local))
    if report.created:
        _say(f"topics: created {', '.join(report.created)}")
    else:
        _say(f"topics: all {len(report.existing)} present")
    if not args.infra_only:
        credentials = dev_credentials(local, _say)
        services.up(_say)
        _say(f"API: http://{local.bridge_host}:{local.bridge_port} (docs at /docs)")
        for credential in credentials:
            _say(f"  {credential.who}: clientId={credential.client_id} "
                 f"clientSecret={credential.client_secret}")  # fmt: skip
        _say_agent(local)
    if secrets is not None:
        _say_secured(local, secrets)
    _say(f"stack up in {time.monotonic() - started:.1f} s")
    return 0


def _say_secured(settings: Settings, secrets: StackSecrets) -> None:
    """How a client of one's own reaches the secured servers (the passwords stay in the
    file, mode 600)."""
    _say(f"secured: Kafka SASL_SSL ({secrets.kafka_user}, {settings.kafka_sasl_mechanism}), "
         f"Redis TLS with a password; CA {secrets.certs.ca_cert}, passwords in "
         f"{settings.home / 'stack-secrets.json'}")  # fmt: skip


def _say_agent(settings: Settings) -> None:
    """The environment that starts Port's execution agent against the stack."""
    if settings.kafka_security_protocol != "PLAINTEXT":
        # port-agent's consumer sets SASL credentials only from Port's cloud, never with
        # USING_LOCAL_PORT_INSTANCE (its app/consumers/kafka_consumer.py).
        _say("Port's execution agent: it takes no SASL credentials for a broker of one's "
             "own, so it can't log in to a --secure stack's Kafka; its POLLING streamer "
             "works over the API (README: Execution agent)")  # fmt: skip
        return
    path = write_agent_env(settings)
    if path is None:
        return
    _say(f"Port's execution agent (agent: true webhooks; README: Execution agent), "
         f"environment also in {path}:")  # fmt: skip
    for name, value in agent_environment(settings).items():
        _say(f"  {name}={value}")


def _check_profile(settings: Settings, wanted: StackProfile) -> None:
    """A stack of another shape running here would hold the ports and pid files."""
    recorded = stack_profile.load(settings)
    if recorded == wanted or not any(s.pid for s in _whole(settings, recorded).status()):
        return
    shape = ("a secured " if recorded.secure else "a ") + (
        "cluster" if recorded.cluster else "single-node"
    )
    raise StackError(
        f"{shape} stack with {recorded.engines} engine(s) runs in {settings.home}; "
        "`switchyard stack down` first, or ask `up` for the same --cluster/--engines/--secure"
    )


def _whole(settings: Settings, profile: StackProfile | None = None) -> Stack:
    profile = profile or stack_profile.load(settings)
    infra, services = full_stack(local_settings(settings, profile), profile)
    return Stack(settings, infra.components + services.components)


def stack_status(settings: Settings, _: argparse.Namespace) -> int:
    statuses = _whole(settings).status()
    for status in statuses:
        _say(status.line())
    infra = [s for s in statuses if s.name.startswith(("redis", "kafka"))]
    return 0 if all(s.pid is not None for s in infra) else 3


def stack_down(settings: Settings, _: argparse.Namespace) -> int:
    _whole(settings).down(_say)
    stack_profile.clear(settings)
    return 0


def auth_init(settings: Settings, args: argparse.Namespace) -> int:
    path: Path = args.file or settings.auth_path
    if path.exists():
        _say(f"{path} exists; leaving it alone")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    made = write_dev_config(path)
    agent = new_agent_credential(path, settings)
    for credential in [*made, agent]:
        _say(f"{credential.who}: clientId={credential.client_id} "
             f"clientSecret={credential.client_secret}")  # fmt: skip
    _say(f"wrote {path} (secrets are stored hashed; these are shown once)")
    _say(f"the engine signs the agent's messages with its secret: set "
         f"SWITCHYARD_AGENT_CLIENT_ID={agent.client_id} and "
         f"SWITCHYARD_AGENT_CLIENT_SECRET={agent.client_secret}")  # fmt: skip
    return 0


def demo(settings: Settings, args: argparse.Namespace) -> int:
    local = local_settings(settings, stack_profile.load(settings))
    final = run_demo(local, _say, as_json=args.json)
    if not args.json:
        for line in next_steps(local, final["identifier"]):
            _say(line)
    return 0 if final["result"] == "SUCCESS" else 1


def serve(settings: Settings, args: argparse.Namespace) -> int:
    if args.group == "bridge":
        return bridge_group.serve_bridge(settings, args)
    return services.serve(args.group, settings, args.ready_file)


def topics_ensure(settings: Settings, _: argparse.Namespace) -> int:
    report = asyncio.run(ensure_topics(settings))
    for name in report.created:
        _say(f"created {name}")
    for name in report.existing:
        _say(f"present {name}")
    return 0


def topics_list(settings: Settings, _: argparse.Namespace) -> int:
    for t in TopicRegistry.from_settings(settings).all():
        days = t.retention_ms / 86_400_000
        _say(f"{t.name:<34} key={t.key:<18} value={t.value:<15} partitions={t.partitions:<4} "
             f"retention={days:g}d  {t.purpose}")  # fmt: skip
    return 0


def _engine_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_ENGINES:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_ENGINES}")
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchyard", description="Switchyard workflow-run engine", epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    stack = groups.add_parser("stack", help="the local Kafka + Redis stack")
    stack_cmds = stack.add_subparsers(dest="command", required=True, metavar="ACTION")
    up = stack_cmds.add_parser("up", help="start everything (idempotent)")
    up.add_argument("--infra-only", action="store_true", help="only Kafka and Redis (+ topics)")
    up.add_argument(
        "--cluster",
        action="store_true",
        help="three KRaft brokers and a Redis Cluster of three masters with a replica each",
    )
    up.add_argument(
        "--engines",
        type=_engine_count,
        default=1,
        metavar="N",
        help="engine processes (engine-1..engine-N, each with its own static member id)",
    )
    up.add_argument(
        "--secure",
        action="store_true",
        help="brokers over SASL_SSL (SCRAM) and Redis over TLS with a password; the "
        "certificates and passwords are made once in the stack's home",
    )
    up.set_defaults(run=stack_up)
    stack_cmds.add_parser("status", help="what runs where").set_defaults(run=stack_status)
    stack_cmds.add_parser("down", help="stop what `up` started").set_defaults(run=stack_down)
    topics = groups.add_parser("topics", help="Kafka topics of the registry")
    topic_cmds = topics.add_subparsers(dest="command", required=True, metavar="ACTION")
    topic_cmds.add_parser("ensure", help="create missing topics").set_defaults(run=topics_ensure)
    topic_cmds.add_parser("list", help="show the registry").set_defaults(run=topics_list)
    add_worker_commands(groups)
    add_state_commands(groups)
    common = common_options()
    add_workflow_commands(groups, common)
    add_run_commands(groups, common)
    auth = groups.add_parser("auth", help="users and machine credentials of the API")
    auth_cmds = auth.add_subparsers(dest="command", required=True, metavar="ACTION")
    init = auth_cmds.add_parser("init", help="write a dev auth file (Admin, Member, machine)")
    init.add_argument(
        "--file", type=Path, help="where (default: SWITCHYARD_AUTH_FILE or <home>/auth.json)"
    )
    init.set_defaults(run=auth_init)
    demo_cmd = groups.add_parser(
        "demo", help="run a sample workflow end to end through the API (after `stack up`)"
    )
    demo_cmd.add_argument("--json", action="store_true", help="print the finished run's JSON")
    demo_cmd.set_defaults(run=demo)
    for name, text in (
        ("engine", "run the engine: the inbox processor (foreground)"),
        ("executor", "run the built-in webhook executor (foreground)"),
        ("timers", "run the timer service: due timers become TimerFired events (foreground)"),
        ("scheduler", "run the scheduler: SCHEDULE_TRIGGER ticks start runs (foreground)"),
        ("triggers", "run the trigger matcher: entity events start event-triggered runs"),
        ("bridge", "run the HTTP API (foreground)"),
    ):
        service = groups.add_parser(name, help=text)
        service.add_argument("--ready-file", type=Path, help="write the pid here once serving")
        if name == "bridge":
            bridge_group.add_bridge_options(service)
        service.set_defaults(run=serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:  # a bad SWITCHYARD_* value: say which, no traceback
        print(f"switchyard: {settings_problems(exc)}", file=sys.stderr)
        return 2
    run: Command = args.run
    try:
        return run(settings, args)
    except (StackError, TopicMismatch, DemoError, StoreRefused) as exc:
        print(f"switchyard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def settings_problems(error: ValidationError) -> str:
    """One line per bad setting, named as it is set: ``SWITCHYARD_<NAME>``."""
    lines = []
    for problem in error.errors():
        name = "SWITCHYARD_" + "_".join(str(part) for part in problem["loc"]).upper()
        given = problem.get("input")
        lines.append(f"{name}={given!r}: {problem['msg']}" if given is not None else
                     f"{name}: {problem['msg']}")  # fmt: skip
    return "; ".join(lines)


if __name__ == "__main__":
    sys.exit(main())
