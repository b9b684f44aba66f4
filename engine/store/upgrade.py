"""The store's format marker and the upgrade of a store written by an older release.

``sy:meta`` records the run-state format (``switchyard.engine.machine.state_format``)
and the key layout (the names in ``keys.py``) of the data in this Redis. A store
without it holds data from before it existed: state format 1, key layout 1.

- :func:`claim_store_format` is the engine's start-up check: it refuses a store
  newer than the code (an older engine would misread, then overwrite, what a newer
  one wrote) and keys in another layout, and records the code's state format.
  Older state documents are fine: they are upgraded lazily as they are read.
- :func:`upgrade_store` is ``switchyard state upgrade``: the key-layout steps from
  the stored layout to the code's, then every run state still in an older format
  rewritten in the current one, then the marker. Idempotent: a second run (or one
  after a crash half-way) finds nothing left to do.

Rewriting states is safe while engines run: each one is a compare-and-set against
the document read, so a state an engine rewrote meanwhile (in the current format
already) is left alone. A key-layout step is not: it moves keys engines, bridges
and executors are writing. Stop them first (``switchyard stack down`` or your
orchestrator); an engine refuses to start on the other layout until it is done.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

import orjson
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from switchyard.engine.machine.state_format import (
    CURRENT_FORMAT,
    STEPS,
    Step,
    current_format,
    needs_upgrade,
    upgrade_document,
)
from switchyard.engine.store import keys
from switchyard.engine.store.partition_layout import to_partition_tags

Say = Callable[[str], None]
LayoutStep = Callable[[aioredis.Redis, int, bool, Say], Awaitable[int]]
"""Moves the keys of layout N to layout N + 1 for an inbox of that many partitions (dry
run: counts them only); returns how many it moved (or would). Must be idempotent: it
may be run again after a crash."""

# Layout N → the step to N + 1. Append only, like the state format's steps.
LAYOUT_STEPS: Mapping[int, LayoutStep] = MappingProxyType({
    1: to_partition_tags,  # run keys tagged by inbox partition (docs/cluster-layout.md)
})  # fmt: skip
KEY_LAYOUT = 1 + len(LAYOUT_STEPS)

# Keys only a release before the marker wrote: their presence without a marker means
# the data predates it (format 1, layout 1), not a fresh store. Not ``sy:wfs``: every
# layout's bridge writes it, so a new store whose first workflow was defined before
# any engine started would be taken for layout 1 and refused. A marker-less store
# with workflows and no runs has nothing the layout step moves.
_EXISTING_DATA = (f"{keys.PREFIX}runs:all",)  # layout 1's all-runs index
_BATCH = 500

_REWRITE = """
if redis.call('HGET', KEYS[1], 'state') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', ARGV[2])
  return 1
end
return 0
"""


class StoreRefused(Exception):
    """This code can't use the store as it is; ``str()`` says why and what to do."""

    retriable = False


class StoreFormatRefused(StoreRefused):
    """The store is newer than the code, or its keys are in another layout."""

    def __init__(self, message: str, *, stored: StoreFormat, code: StoreFormat) -> None:
        super().__init__(message)
        self.stored = stored
        self.code = code


@dataclass(frozen=True)
class StoreFormat:
    state_format: int
    key_layout: int

    def describe(self) -> str:
        return f"state format {self.state_format}, key layout {self.key_layout}"


CODE_FORMAT = StoreFormat(CURRENT_FORMAT, KEY_LAYOUT)


@dataclass
class UpgradeReport:
    """What :func:`upgrade_store` did (or, in a dry run, would do)."""

    before: StoreFormat
    after: StoreFormat
    keys_moved: int = 0
    runs_scanned: int = 0
    runs_upgraded: int = 0
    # Rewritten by an engine between the read and the compare-and-set: already current.
    runs_changed_meanwhile: int = 0


def _lua(name: str) -> str:
    return resources.files("switchyard.engine.store").joinpath("lua", name).read_text()


async def read_store_format(client: aioredis.Redis) -> StoreFormat | None:
    """The marker as stored; None when there is none (data from before it, or none)."""
    state_format, key_layout = await client.hmget(keys.META, ["state_format", "key_layout"])
    if state_format is None:
        return None
    return StoreFormat(int(state_format), int(key_layout) if key_layout is not None else 1)


async def claim_store_format(
    client: aioredis.Redis,
    code: StoreFormat = CODE_FORMAT,
    *,
    data_keys: Sequence[str] = _EXISTING_DATA,
) -> StoreFormat:
    """The engine's start-up check (before it consumes anything): the store's format
    as found, once the marker records the code's. Raises :class:`StoreFormatRefused`
    when the store is newer than ``code`` or its keys are in another layout.

    Without a marker, a store holding any of ``data_keys`` is an older release's
    (format 1, layout 1); one holding none is new, and gets the code's formats."""
    script = client.register_script(_lua("claim_store_format.lua"))
    # One EXISTS per key: they sit in different Redis Cluster slots.
    old = [bool(await client.exists(key)) for key in data_keys]
    found, layout, written = await script(
        keys=[keys.META], args=[code.state_format, code.key_layout, int(any(old))]
    )
    stored = StoreFormat(int(found), int(layout))
    if not int(written):
        raise StoreFormatRefused(_refusal(stored, code), stored=stored, code=code)
    return stored


class StorePartitionsRefused(StoreRefused):
    """The store's run keys are tagged for another inbox partition count."""

    def __init__(self, stored: int, code: int) -> None:
        super().__init__(
            f"this Redis's run keys are laid out for {stored} inbox partitions, and this "
            f"engine's inbox has {code}: with another count it would look for every run "
            f"under another partition's keys. Use an inbox of {stored} partitions "
            f"(SWITCHYARD_INBOX_PARTITIONS={stored}, and a topic of that many), or "
            f"another Redis"
        )
        self.stored = stored
        self.code = code


async def claim_partitions(client: aioredis.Redis, partitions: int) -> int:
    """Record in ``sy:meta`` the inbox partition count the run keys are tagged by (the
    first engine's; ``switchyard state upgrade`` records it too), and refuse another.

    HSETNX then a read: two engines starting at once both read the winner's count."""
    await client.hsetnx(keys.META, "partitions", partitions)
    stored = int(await client.hget(keys.META, "partitions") or partitions)
    if stored != partitions:
        raise StorePartitionsRefused(stored, partitions)
    return stored


def _refusal(stored: StoreFormat, code: StoreFormat) -> str:
    where = f"this Redis holds {stored.describe()}; this release reads {code.describe()}"
    if stored.state_format > code.state_format or stored.key_layout > code.key_layout:
        return (
            f"{where}: it was written by a newer release. Run that release (or a later "
            f"one); an older one would misread its runs and write the loss back"
        )
    return f"{where}: stop every Switchyard process and run `switchyard state upgrade`"


async def upgrade_store(
    client: aioredis.Redis,
    *,
    dry_run: bool,
    say: Say,
    partitions: int,
    steps: Mapping[int, Step] = STEPS,
    layout_steps: Mapping[int, LayoutStep] = LAYOUT_STEPS,
    runs: str = "*",
) -> UpgradeReport:
    """``switchyard state upgrade``: key layout, then run states, then the marker.

    ``steps`` and ``layout_steps`` are the registries (tests pass their own), ``runs``
    a glob of the run ids whose states are looked at (every run's by default),
    ``partitions`` the inbox's partition count (``SWITCHYARD_INBOX_PARTITIONS``)."""
    code = StoreFormat(current_format(steps), 1 + len(layout_steps))
    before = await read_store_format(client) or await _inferred(client, code)
    if before.state_format > code.state_format or before.key_layout > code.key_layout:
        raise StoreFormatRefused(_refusal(before, code), stored=before, code=code)
    report = UpgradeReport(before=before, after=code)
    for layout in range(before.key_layout, code.key_layout):
        say(f"key layout {layout} → {layout + 1}{' (dry run)' if dry_run else ''}")
        report.keys_moved += await layout_steps[layout](client, partitions, dry_run, say)
        if not dry_run:  # a crash after this step resumes at the next one
            await client.hset(keys.META, "key_layout", layout + 1)
    await _upgrade_states(client, report, steps, runs, dry_run=dry_run, say=say)
    if not dry_run and report.keys_moved:  # moved for that count: engines must keep it
        await client.hset(keys.META, "partitions", partitions)
    if not dry_run:
        # Lazily upgraded documents may still be older: the marker says what is the
        # newest format here (what an older engine must not read), and it is this one.
        await client.hset(keys.META, items=_marker(code))
    return report


def _marker(found: StoreFormat) -> list[str | int]:
    return ["state_format", found.state_format, "key_layout", found.key_layout]


async def _inferred(client: aioredis.Redis, code: StoreFormat) -> StoreFormat:
    if await client.exists(*_EXISTING_DATA):
        return StoreFormat(1, 1)
    return code


async def _upgrade_states(
    client: aioredis.Redis,
    report: UpgradeReport,
    steps: Mapping[int, Step],
    runs: str,
    *,
    dry_run: bool,
    say: Say,
) -> None:
    """Every run state not in the current format, rewritten in it (compare-and-set)."""
    rewrite = client.register_script(_REWRITE)
    upgrade = _Upgrade(rewrite, steps, report, dry_run)
    batch: list[bytes] = []
    # "sy:run:{p…}:<run>" has three colons; its :outbox, :logs… have four.
    async for key in client.scan_iter(match=keys.run(runs, "{*}"), count=_BATCH):
        if key.count(b":") != 3:
            continue
        batch.append(key)
        if len(batch) >= _BATCH:
            await upgrade.batch(client, batch)
            say(_progress(report, dry_run))
            batch = []
    await upgrade.batch(client, batch)
    say(_progress(report, dry_run))


@dataclass
class _Upgrade:
    """Rewrites a batch of run states, counting into ``report``."""

    rewrite: AsyncScript
    steps: Mapping[int, Step]
    report: UpgradeReport
    dry_run: bool

    async def batch(self, client: aioredis.Redis, run_keys: list[bytes]) -> None:
        if not run_keys:
            return
        async with client.pipeline(transaction=False) as pipe:
            for key in run_keys:
                pipe.hget(key, "state")
            states: list[bytes | None] = await pipe.execute()
        for key, raw in zip(run_keys, states, strict=True):
            if raw is not None:
                await self.one(key, raw)

    async def one(self, key: bytes, raw: bytes) -> None:
        self.report.runs_scanned += 1
        if not needs_upgrade(raw, self.steps):
            return
        upgraded = orjson.dumps(upgrade_document(orjson.loads(raw), self.steps))
        if self.dry_run or int(await self.rewrite(keys=[key], args=[raw, upgraded])):
            self.report.runs_upgraded += 1
        else:
            self.report.runs_changed_meanwhile += 1


def _progress(report: UpgradeReport, dry_run: bool) -> str:
    verb = "to upgrade" if dry_run else "upgraded"
    line = f"runs: {report.runs_scanned} scanned, {report.runs_upgraded} {verb}"
    if report.runs_changed_meanwhile:
        line += f", {report.runs_changed_meanwhile} rewritten by an engine meanwhile"
    return line
