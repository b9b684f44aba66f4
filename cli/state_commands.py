"""``switchyard state …``: the format of the stored run data, and its upgrade.

    switchyard state status              the store's format marker beside this release's
    switchyard state upgrade [--dry-run] migrate keys to this release's layout, rewrite
                                         run states in older formats, record the marker

Both talk to ``SWITCHYARD_REDIS_URL``. ``upgrade`` is idempotent; stop every
Switchyard process first when it has key-layout steps to take (README "Upgrading").
Exit codes: 0 done; 2 refused (the store is newer than this release) or Redis
unreachable, with one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from redis.exceptions import RedisError

from switchyard.engine.machine.state_format import StateFormatError
from switchyard.engine.store.client import redis_client
from switchyard.engine.store.upgrade import (
    CODE_FORMAT,
    StoreFormatRefused,
    read_store_format,
    upgrade_store,
)
from switchyard.schemas.settings import Settings


def _say(message: str) -> None:
    print(message, flush=True)


async def _status(settings: Settings) -> int:
    client = redis_client(settings)
    try:
        stored = await read_store_format(client)
    finally:
        await client.aclose()
    _say(f"this release: {CODE_FORMAT.describe()}")
    if stored is None:
        _say("store: no marker (written before markers, or empty): state format 1, key layout 1")
    else:
        _say(f"store: {stored.describe()}")
    return 0


async def _upgrade(settings: Settings, dry_run: bool) -> int:
    client = redis_client(settings)
    try:
        report = await upgrade_store(
            client, dry_run=dry_run, say=_say, partitions=settings.inbox_partitions
        )
    finally:
        await client.aclose()
    what = "would go" if dry_run else "went"
    _say(f"store {what} from {report.before.describe()} to {report.after.describe()}: "
         f"{report.keys_moved} keys moved, {report.runs_upgraded} of "
         f"{report.runs_scanned} runs rewritten")  # fmt: skip
    return 0


def _run(work: Any) -> int:
    try:
        code: int = asyncio.run(work)
    except (StoreFormatRefused, StateFormatError) as exc:
        print(f"switchyard: {exc}", file=sys.stderr)
        return 2
    except (RedisError, OSError) as exc:
        print(f"switchyard: Redis at SWITCHYARD_REDIS_URL: {exc}", file=sys.stderr)
        return 2
    return code


def state_status(settings: Settings, _: argparse.Namespace) -> int:
    return _run(_status(settings))


def state_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    return _run(_upgrade(settings, args.dry_run))


def add_state_commands(groups: Any) -> None:
    """``state status`` and ``state upgrade`` under ``groups`` (the top-level subparsers)."""
    state = groups.add_parser("state", help="the format of the stored runs, and its upgrade")
    actions = state.add_subparsers(dest="command", required=True, metavar="ACTION")
    actions.add_parser("status", help="the store's format beside this release's").set_defaults(
        run=state_status
    )
    upgrade = actions.add_parser(
        "upgrade", help="migrate the store to this release's formats (idempotent)"
    )
    upgrade.add_argument(
        "--dry-run", action="store_true", help="count what would change; write nothing"
    )
    upgrade.set_defaults(run=state_upgrade)
