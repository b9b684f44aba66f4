"""Workflow definitions in Redis: every update is a new, immutable version.

A run is pinned to the version it started with, so versions are never rewritten;
the engine caches parsed versions in memory for that reason.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import redis.asyncio as aioredis

from switchyard.engine.store import keys
from switchyard.schemas import InputConfig, Workflow, encode, format_timestamp
from switchyard.schemas.workflow_rules import parse_workflow

# Create or update in one step: a concurrent PUT can't hand out the same version twice.
# KEYS[1]: the workflow's hash (its versions share its slot); ARGV: create|update, the
# definition, the time (ISO), the view facts of the version.
_SAVE = """
local exists = redis.call('HEXISTS', KEYS[1], 'version')
if ARGV[1] == 'create' and exists == 1 and redis.call('HGET', KEYS[1], 'deleted') ~= '1' then
  return -1
end
if ARGV[1] == 'update' and (exists == 0 or redis.call('HGET', KEYS[1], 'deleted') == '1') then
  return -2
end
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'deleted', '0', 'updatedAt', ARGV[3])
redis.call('HSETNX', KEYS[1], 'createdAt', ARGV[3])
-- Stored without its version (the key says it): cjson would turn [] into {}.
redis.call('SET', KEYS[1] .. ':v:' .. version, ARGV[2])
redis.call('HSET', KEYS[1], 'view:' .. version, ARGV[4])
return version
"""


@dataclass(frozen=True)
class ViewFacts:
    """What decides who may view a version's runs, without parsing the definition:
    ``allowAnyoneToViewRuns`` and the union of its INPUT nodes' responders. Stored
    beside the version (``view:<n>`` in the workflow's hash) when it is saved."""

    anyone: bool
    users: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()

    @classmethod
    def of(cls, workflow: Workflow) -> ViewFacts:
        inputs = [n.config.responders for n in workflow.nodes if isinstance(n.config, InputConfig)]
        return cls(
            anyone=workflow.allow_anyone_to_view_runs,
            users=tuple(sorted({u for r in inputs for u in r.users})),
            roles=tuple(sorted({u for r in inputs for u in r.roles})),
            teams=tuple(sorted({u for r in inputs for u in r.teams})),
        )

    def dump(self) -> bytes:
        return orjson.dumps({"anyone": self.anyone, "users": self.users, "roles": self.roles,
                             "teams": self.teams})  # fmt: skip

    @classmethod
    def load(cls, raw: str) -> ViewFacts:
        data = orjson.loads(raw)
        return cls(bool(data["anyone"]), tuple(data["users"]), tuple(data["roles"]),
                   tuple(data["teams"]))  # fmt: skip


class WorkflowExists(Exception):
    """A create named an identifier that is taken."""


class WorkflowMissing(Exception):
    """An update or read named an identifier (or version) that does not exist."""


@dataclass(frozen=True)
class LiveVersion:
    """A live workflow's latest version and when it was saved (``updatedAt``)."""

    identifier: str
    version: int
    saved_at: datetime


class WorkflowStore:
    """Versioned definitions; parsed versions are cached (they never change)."""

    def __init__(self, client: aioredis.Redis, cache_size: int = 512) -> None:
        self.client = client
        self._save = client.register_script(_SAVE)
        self._cache: OrderedDict[tuple[str, int], Workflow] = OrderedDict()
        self._cache_size = cache_size

    async def save(self, workflow: Workflow, *, create: bool, now: datetime) -> Workflow:
        """Store a new version; returns the workflow with its ``version`` set."""
        document = orjson.loads(encode(workflow, exclude_none=True))
        document.pop("version", None)
        stamp = format_timestamp(now)
        if create:
            # Indexed first, outside the script: the index is in another slot of a Redis
            # Cluster. Readers skip an entry without a live hash, so a create refused
            # (or cut short) leaves nothing visible; NX keeps a re-create's first time.
            await self.client.zadd(
                keys.WORKFLOWS, {workflow.identifier: int(now.timestamp() * 1000)}, nx=True
            )
        version = await self._save(
            keys=[keys.workflow(workflow.identifier)],
            args=[
                "create" if create else "update", orjson.dumps(document), stamp,
                ViewFacts.of(workflow).dump(),
            ],
        )  # fmt: skip
        if version == -1:
            raise WorkflowExists(f"workflow {workflow.identifier} already exists")
        if version == -2:
            raise WorkflowMissing(f"workflow {workflow.identifier} does not exist")
        return workflow.model_copy(update={"version": int(version)})

    async def latest_versions(self, identifiers: Iterable[str]) -> dict[str, int]:
        """The latest live version of each workflow that has one, in one round trip."""
        ids = list(dict.fromkeys(identifiers))
        if not ids:
            return {}
        async with self.client.pipeline(transaction=False) as pipe:
            for identifier in ids:
                pipe.hmget(keys.workflow(identifier), ["version", "deleted"])
            replies = await pipe.execute()
        return latest_of(ids, replies)

    async def live_versions(self) -> list[LiveVersion]:
        """Every live workflow's latest version, in two round trips (the scheduler's scan).

        Version and ``updatedAt`` are read in one HMGET, and the save script writes them
        together: ``saved_at`` is when that very version was saved.
        """
        ids = [_text(i) for i in await self.client.zrange(keys.WORKFLOWS, 0, -1)]
        async with self.client.pipeline(transaction=False) as pipe:
            for identifier in ids:
                pipe.hmget(keys.workflow(identifier), ["version", "deleted", "updatedAt"])
            replies = await pipe.execute()
        return [
            LiveVersion(identifier, int(version), datetime.fromisoformat(_text(saved)))
            for identifier, (version, deleted, saved) in zip(ids, replies, strict=True)
            if version is not None and saved is not None and deleted not in (b"1", "1")
        ]

    async def latest_version(self, identifier: str) -> int | None:
        meta = await self.client.hmget(keys.workflow(identifier), ["version", "deleted"])
        if meta[0] is None or meta[1] in (b"1", "1"):
            return None
        return int(meta[0])

    async def get(self, identifier: str, version: int | None = None) -> Workflow | None:
        """A version of a workflow (the latest live one when ``version`` is None)."""
        if version is None:
            version = await self.latest_version(identifier)
            if version is None:
                return None
        cached = self._cache.get((identifier, version))
        if cached is not None:
            self._cache.move_to_end((identifier, version))
            return cached
        raw = await self.client.get(keys.workflow_version(identifier, version))
        if raw is None:
            return None
        document = orjson.loads(raw)
        document["version"] = version
        workflow = parse_workflow(document)
        self._cache[(identifier, version)] = workflow
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return workflow

    async def delete(self, identifier: str, now: datetime) -> bool:
        """Soft delete: runs keep reading their versions; new runs are refused."""
        if await self.latest_version(identifier) is None:
            return False
        await self.client.hset(
            keys.workflow(identifier), mapping={"deleted": "1", "updatedAt": format_timestamp(now)}
        )
        return True

    async def view_facts(self, identifiers: Iterable[str]) -> dict[str, dict[int, ViewFacts]]:
        """Every version's :class:`ViewFacts` of each workflow, in one round trip (a
        version saved before they were stored is parsed once and they are added)."""
        ids = list(dict.fromkeys(identifiers))
        async with self.client.pipeline(transaction=False) as pipe:
            for identifier in ids:
                pipe.hgetall(keys.workflow(identifier))
            replies = await pipe.execute()
        found: dict[str, dict[int, ViewFacts]] = {}
        for identifier, raw in zip(ids, replies, strict=True):
            meta = {_text(k): _text(v) for k, v in raw.items()}
            if "version" not in meta:
                continue
            facts = {}
            for version in range(1, int(meta["version"]) + 1):
                stored = meta.get(f"view:{version}")
                facts[version] = (
                    ViewFacts.load(stored) if stored else await self._backfill(identifier, version)
                )
            found[identifier] = facts
        return found

    async def _backfill(self, identifier: str, version: int) -> ViewFacts:
        workflow = await self.get(identifier, version)
        facts = ViewFacts.of(workflow) if workflow is not None else ViewFacts(anyone=False)
        await self.client.hset(keys.workflow(identifier), f"view:{version}", facts.dump())
        return facts

    async def meta(self, identifier: str) -> dict[str, Any]:
        raw = await self.client.hgetall(keys.workflow(identifier))
        return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def latest_of(identifiers: Sequence[str], replies: Sequence[Any]) -> dict[str, int]:
    """The latest live versions from each workflow's ``HMGET version deleted`` reply."""
    return {
        identifier: int(version)
        for identifier, (version, deleted) in zip(identifiers, replies, strict=True)
        if version is not None and deleted not in (b"1", "1")
    }
