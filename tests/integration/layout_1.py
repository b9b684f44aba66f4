"""Key layout 1 (the releases before the partition tags) as the upgrade tests see it.

A store is written as *entries*: the format ``scripts/capture_upgrade_fixtures.py``
writes (``redis.json``): key → ``{"type", "whole", "value"[, "pttl"]}``, each value
``{"t": text}`` or ``{"b64": bytes}``. :func:`write_entry` writes one; after
``switchyard state upgrade``, :func:`check_moved` says, for every layout-1 entry, what is
not where layout 2 keeps it (``docs/cluster-layout.md``'s table), and
:func:`layout_1_keys` lists the layout-1 keys still in the database.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from switchyard.engine.store import keys
from switchyard.engine.store.slots import partition_tag

Entry = dict[str, Any]
_P = keys.PREFIX
# Layout 1's keys of one name, across runs (keys.py of that release).
GLOBALS = frozenset(
    f"{_P}{name}"
    for name in (
        "runs:all", "runs:finished", "runs:events", "outbox:pending", "timers",
        "timers:details", "stats:node-runs-in-flight",
    )
)  # fmt: skip
# Layout 1's keys of a name per index, node-run bucket, external id, claim or inbox
# partition: layout 2's same prefix is followed by a partition's tag (``{p…}``).
PREFIXED = tuple(
    f"{_P}{name}"
    for name in (
        "runs:wf:", "runs:version:", "runs:by:", "runs:status:", "runs:result:",
        "runs:entity:", "nr:", "ext:", "claims:", "claim:", "inbox:strays:",
    )
)  # fmt: skip
_RUN_KEY = re.compile(r"sy:run:\{(?P<run>[^}]+)\}(?P<suffix>(:outbox|:logs|:events)?)$")
# Dropped by the step: the all-runs event stream (its cursors mean nothing in layout
# 2) and the pruner's backfill cursor (a string then; a hash by partition now).
DROPPED = frozenset({f"{_P}runs:events", keys.RETENTION_BACKFILL})


def value(part: dict[str, str]) -> bytes:
    return part["t"].encode() if "t" in part else base64.b64decode(part["b64"])


def text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def is_layout_1(key: str) -> bool:
    """A key of layout 1's that layout 2 names otherwise (or drops)."""
    if key in GLOBALS or key == keys.RETENTION_BACKFILL:
        return True
    if _RUN_KEY.match(key):  # layout 2's "sy:run:{p…}:<run>…" does not match
        return True
    prefix = next((p for p in PREFIXED if key.startswith(p)), None)
    return prefix is not None and not key[len(prefix) :].startswith("{")


async def layout_1_keys(client: aioredis.Redis) -> list[str]:
    """Every layout-1 key in ``client``'s database (a scan of the whole of it)."""
    return sorted(
        name for name in [text(k) async for k in client.scan_iter(count=1000)] if is_layout_1(name)
    )


async def write_entry(client: aioredis.Redis, key: str, entry: Entry) -> None:
    """Write one entry. A key it owns whole is replaced; into a shared one (a run
    index, a node-run bucket, the timers, the event stream) its members are added."""
    kind, content = entry["type"], entry["value"]
    if entry["whole"]:
        await client.delete(key)
    if kind == "string":
        await client.set(key, value(content))
    elif kind == "hash":
        await client.hset(key, mapping={value(f): value(v) for f, v in content})
    elif kind == "list":
        await client.rpush(key, *[value(v) for v in content])
    elif kind == "set":
        await client.sadd(key, *[value(v) for v in content])
    elif kind == "zset":
        await client.zadd(key, {value(m): score for m, score in content})
    elif kind == "stream":  # new ids: an entry's id is only the list SSE's cursor
        for _, fields in content:
            await client.xadd(key, {value(f): value(v) for f, v in fields})
    else:
        raise AssertionError(f"{key}: a {kind} entry the restore can't write")
    if "pttl" in entry:
        await client.pexpire(key, entry["pttl"])


@dataclass(frozen=True)
class Placement:
    """Where layout 2 keeps one thing of the layout-1 key ``old``: the whole of ``key``
    (``entry``'s content, its TTL kept), one member of it (``member``: its score in a
    sorted set, its value in a hash, or in a set), or nothing (``absent``: dropped)."""

    old: str
    key: str
    kind: str  # whole | zset | hash | set | absent
    member: bytes = b""
    wanted: Any = None
    entry: Entry | None = None

    async def found(self, client: aioredis.Redis) -> Any:
        if self.kind == "zset":
            return await client.zscore(self.key, self.member)
        if self.kind == "hash":
            return await client.hget(self.key, self.member)
        if self.kind == "set":
            return bool(await client.sismember(self.key, text(self.member)))
        if self.kind == "absent":
            return await client.exists(self.key) == 0
        return await _content(client, self.key, self.entry or {})

    async def forget(self, client: aioredis.Redis) -> None:
        """Remove it (a previous test's leftover, which would pass for a move)."""
        if self.kind == "zset":
            await client.zrem(self.key, self.member)
        elif self.kind == "hash":
            await client.hdel(self.key, text(self.member))
        elif self.kind == "set":
            await client.srem(self.key, text(self.member))
        elif self.kind == "whole" and self.key != self.old:
            await client.delete(self.key)


async def _content(client: aioredis.Redis, key: str, entry: Entry) -> Any:
    """``key``'s content, in the form ``_wanted`` gives ``entry``'s, and whether it has
    a TTL when ``entry`` had one."""
    kind = entry["type"]
    if kind == "hash":
        found: Any = _states_unformatted(await client.hgetall(key))
    elif kind == "list":
        found = await client.lrange(key, 0, -1)
    elif kind == "zset":
        found = await client.zrange(key, 0, -1, withscores=True)
    else:
        found = await client.get(key)
    return found, ("pttl" in entry and await client.pttl(key) > 0)


def _wanted(entry: Entry) -> Any:
    kind = entry["type"]
    if kind == "hash":
        content: Any = _states_unformatted(dict(_pairs(entry)))
    elif kind == "list":
        content = [value(v) for v in entry["value"]]
    elif kind == "zset":
        content = [(value(m), score) for m, score in entry["value"]]
    else:
        content = value(entry["value"])
    return content, "pttl" in entry


def _states_unformatted(fields: Mapping[Any, Any]) -> dict[Any, Any]:
    """A run hash's fields with its ``state`` read as a document without ``format``: the
    upgrade moves a run's keys and brings its state to the current format
    (``state_format.STEPS``), which changes nothing else in it."""
    state = fields.get(b"state")
    if state is None:
        return dict(fields)
    document = orjson.loads(state)
    if isinstance(document, dict):
        document.pop("format", None)
    return {**fields, b"state": document}


def _pairs(entry: Entry) -> list[tuple[bytes, bytes]]:
    return [(value(f), value(v)) for f, v in entry["value"]]


@dataclass
class _Store:
    """A layout-1 store (its entries) and the partition count it is moved for."""

    entries: dict[str, Entry]
    partitions: int

    def tag(self, run_id: bytes | str) -> str:
        return keys.tag_of(text(run_id), self.partitions)

    def run_of_node_run(self, node_run_id: str) -> str:
        """From the store's node-run buckets, or its claim records."""
        bucket = self.entries.get(f"{_P}nr:{node_run_id[5:7]}", {"value": []})
        for field, run_id in _pairs(bucket):
            if field == node_run_id.encode():
                return text(run_id)
        return text(dict(_pairs(self.entries[f"{_P}claim:{node_run_id}"]))[b"run"])

    def timer_run(self, timer_id: bytes) -> str:
        details = dict(_pairs(self.entries[f"{_P}timers:details"]))
        run_id: str = orjson.loads(details[timer_id])["runId"]
        return run_id

    def whole(self, old: str, new: str) -> list[Placement]:
        entry = self.entries[old]
        return [Placement(old, new, "whole", wanted=_wanted(entry), entry=entry)]


def _index_of(old: str) -> Callable[[str], str] | None:
    """Layout 2's name, in a partition, of the layout-1 run index ``old``."""
    if old == f"{_P}runs:all":
        return keys.runs_all
    if old == f"{_P}runs:finished":
        return keys.runs_finished
    if not old.startswith(f"{_P}runs:"):
        return None
    kind, _, rest = old[len(f"{_P}runs:") :].partition(":")
    return lambda tag: f"{_P}runs:{kind}:{tag}:{rest}"


def _run_key(s: _Store, old: str) -> list[Placement]:
    found = _RUN_KEY.match(old)
    assert found is not None
    return s.whole(old, keys.run(found["run"], s.tag(found["run"])) + found["suffix"])


def _node_runs(s: _Store, old: str) -> list[Placement]:
    return [
        Placement(old, keys.node_runs_bucket(text(node_run_id), s.tag(run_id)), "hash",
                  node_run_id, run_id)
        for node_run_id, run_id in _pairs(s.entries[old])
    ]  # fmt: skip


def _external(s: _Store, old: str) -> list[Placement]:
    run_id = s.run_of_node_run(text(value(s.entries[old]["value"])))
    return s.whole(old, keys.external_run(old[len(f"{_P}ext:") :], s.tag(run_id)))


def _claim(s: _Store, old: str) -> list[Placement]:
    node_run_id = old[len(f"{_P}claim:") :]
    return s.whole(old, keys.claim(node_run_id, s.tag(s.run_of_node_run(node_run_id))))


def _claims(s: _Store, old: str) -> list[Placement]:
    installation = old[len(f"{_P}claims:") :]
    return [
        Placement(old, keys.claims(installation, s.tag(s.run_of_node_run(text(value(m))))),
                  "zset", value(m), score)
        for m, score in s.entries[old]["value"]
    ]  # fmt: skip


def _timers(s: _Store, old: str) -> list[Placement]:
    return [
        Placement(old, keys.timers(s.tag(s.timer_run(value(m)))), "zset", value(m), score)
        for m, score in s.entries[old]["value"]
    ]


def _timer_details(s: _Store, old: str) -> list[Placement]:
    return [
        Placement(old, keys.timer_details(s.tag(s.timer_run(timer_id))), "hash", timer_id, raw)
        for timer_id, raw in _pairs(s.entries[old])
    ]


def _pending(s: _Store, old: str) -> list[Placement]:
    return [
        Placement(old, keys.outbox_pending(s.tag(value(m))), "set", value(m), True)
        for m in s.entries[old]["value"]
    ]


def _strays(s: _Store, old: str) -> list[Placement]:
    topic, _, partition = old[len(f"{_P}inbox:strays:") :].rpartition(":")
    return s.whole(old, keys.strays(topic, partition_tag(int(partition), s.partitions)))


def _counts(s: _Store, old: str) -> list[Placement]:
    """In-flight counts by node type: the gauge shows their sum over the partitions,
    which a test compares (the database's other runs count too). The old hash goes."""
    return [Placement(old, old, "absent", wanted=True)]


def _unmoved(s: _Store, old: str) -> list[Placement]:
    """Named alike in both layouts (the workflows): the whole key, or its members."""
    entry = s.entries[old]
    if entry["whole"]:
        return s.whole(old, old)
    return [Placement(old, old, "zset", value(m), score) for m, score in entry["value"]]


Placer = Callable[[_Store, str], list[Placement]]
_BY_PREFIX: dict[str, Placer] = {
    f"{_P}nr:": _node_runs, f"{_P}ext:": _external, f"{_P}claim:": _claim,
    f"{_P}claims:": _claims, f"{_P}inbox:strays:": _strays,
}  # fmt: skip
_BY_NAME: dict[str, Placer] = {
    f"{_P}timers": _timers, f"{_P}timers:details": _timer_details,
    f"{_P}outbox:pending": _pending, f"{_P}stats:node-runs-in-flight": _counts,
}  # fmt: skip


def _placer(key: str, entry: Entry) -> Placer:
    index = _index_of(key) if entry["type"] == "zset" else None
    if key in DROPPED:
        return lambda s, old: [Placement(old, old, "absent", wanted=True)]
    if index is not None:
        return lambda s, old: [
            Placement(old, index(s.tag(value(m))), "zset", value(m), score)
            for m, score in s.entries[old]["value"]
        ]
    if key in _BY_NAME:
        return _BY_NAME[key]
    if _RUN_KEY.match(key):
        return _run_key
    found = next((placer for prefix, placer in _BY_PREFIX.items() if key.startswith(prefix)), None)
    return found or _unmoved


def placements(entries: dict[str, Entry], partitions: int) -> list[Placement]:
    """Where layout 2 keeps each thing of ``entries`` (a layout-1 store) for an inbox
    of ``partitions`` partitions."""
    store = _Store(entries, partitions)
    return [p for key, entry in entries.items() for p in _placer(key, entry)(store, key)]


async def check_moved(
    client: aioredis.Redis, partitions: int, entries: dict[str, Entry]
) -> list[str]:
    """What of ``entries`` is not where layout 2 keeps it, one line each (empty: all
    moved; the dropped keys gone; the keys named alike unchanged)."""
    missing = []
    for placement in placements(entries, partitions):
        found = await placement.found(client)
        if found != placement.wanted:
            missing.append(f"{placement.old} → {placement.key} {placement.member!r}: "
                           f"{found!r}, not {placement.wanted!r}")  # fmt: skip
    return missing


async def forget_moved(client: aioredis.Redis, partitions: int, entries: dict[str, Entry]) -> None:
    """Remove whatever of ``entries`` is already where layout 2 keeps it (an earlier
    test's, in this shared database), so that only a move puts it there."""
    for placement in placements(entries, partitions):
        await placement.forget(client)
