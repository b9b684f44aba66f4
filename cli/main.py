"""The ``switchyard`` command.

    switchyard stack up        start Kafka (KRaft) and Redis locally, create the topics
    switchyard stack status    what runs where, with resident memory
    switchyard stack down      stop what `stack up` started
    switchyard topics ensure   create the registry's topics (idempotent)
    switchyard topics list     the registry: name, key, value, partitions, retention

Settings come from the environment (``SWITCHYARD_*``); see ``switchyard.schemas.settings``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Sequence

from switchyard.cli.stack.errors import StackError
from switchyard.cli.stack.launcher import Stack
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import TopicMismatch, ensure_topics
from switchyard.topics.registry import TopicRegistry

Command = Callable[[Settings, argparse.Namespace], int]


def _say(message: str) -> None:
    print(message, flush=True)


def stack_up(settings: Settings, _: argparse.Namespace) -> int:
    started = time.monotonic()
    Stack(settings).up(_say)
    report = asyncio.run(ensure_topics(settings))
    if report.created:
        _say(f"topics: created {', '.join(report.created)}")
    else:
        _say(f"topics: all {len(report.existing)} present")
    _say(f"stack up in {time.monotonic() - started:.1f} s")
    return 0


def stack_status(settings: Settings, _: argparse.Namespace) -> int:
    statuses = Stack(settings).status()
    for status in statuses:
        _say(status.line())
    return 0 if all(s.pid is not None for s in statuses) else 3


def stack_down(settings: Settings, _: argparse.Namespace) -> int:
    Stack(settings).down(_say)
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchyard", description="Switchyard workflow-run engine", epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    stack = groups.add_parser("stack", help="the local Kafka + Redis stack")
    stack_cmds = stack.add_subparsers(dest="command", required=True, metavar="ACTION")
    stack_cmds.add_parser("up", help="start everything (idempotent)").set_defaults(run=stack_up)
    stack_cmds.add_parser("status", help="what runs where").set_defaults(run=stack_status)
    stack_cmds.add_parser("down", help="stop what `up` started").set_defaults(run=stack_down)
    topics = groups.add_parser("topics", help="Kafka topics of the registry")
    topic_cmds = topics.add_subparsers(dest="command", required=True, metavar="ACTION")
    topic_cmds.add_parser("ensure", help="create missing topics").set_defaults(run=topics_ensure)
    topic_cmds.add_parser("list", help="show the registry").set_defaults(run=topics_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    run: Command = args.run
    try:
        return run(settings, args)
    except (StackError, TopicMismatch) as exc:
        print(f"switchyard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
