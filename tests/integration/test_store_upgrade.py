"""The store's format marker and ``switchyard state upgrade`` against real Redis: an
engine older than the data refuses to start; the upgrade takes the key-layout steps
and rewrites older run states, once (a second run finds nothing to do).

The marker is one key per database: these tests run on the session's own database
and put back whatever marker they found.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import redis
import redis.asyncio as aioredis

from switchyard.cli.main import main
from switchyard.cli.stack.full import environment
from switchyard.engine.machine.state_format import CURRENT_FORMAT, STEPS, Document, Step
from switchyard.engine.store import keys
from switchyard.engine.store.upgrade import (
    CODE_FORMAT,
    KEY_LAYOUT,
    LayoutStep,
    Say,
    StoreFormat,
    StoreFormatRefused,
    StorePartitionsRefused,
    StoreRefused,
    UpgradeReport,
    claim_partitions,
    claim_store_format,
    read_store_format,
    upgrade_store,
)
from switchyard.schemas.settings import Settings
from tests.helpers import keeping_meta, private_redis_db

pytestmark = pytest.mark.integration


@pytest.fixture
def own(settings: Settings, session_tag: str) -> Settings:
    return private_redis_db(settings, session_tag)


@pytest.fixture
async def client(own: Settings) -> AsyncIterator[aioredis.Redis]:
    """The session's database, its marker put back as it was after the test."""
    async with keeping_meta(own.redis_url) as redis:
        yield redis


async def _mark(client: aioredis.Redis, state_format: int, key_layout: int) -> None:
    await client.hset(keys.META, items=["state_format", state_format, "key_layout", key_layout])


def _missing() -> list[str]:
    """Data keys no store holds: the store looks new."""
    return [f"sy:test-none:{uuid.uuid4().hex}"]


async def test_a_new_store_gets_the_code_s_formats(client: aioredis.Redis) -> None:
    await client.delete(keys.META)
    assert await claim_store_format(client, data_keys=_missing()) == CODE_FORMAT
    assert await read_store_format(client) == CODE_FORMAT


async def test_a_store_from_before_the_marker_is_format_1_layout_1(
    client: aioredis.Redis,
) -> None:
    await client.delete(keys.META)
    probe = f"sy:test-data:{uuid.uuid4().hex}"
    await client.set(probe, "1", ex=60)
    # This release's code (layout 2) is refused the layout-1 data ...
    with pytest.raises(StoreFormatRefused, match=r"run `switchyard state upgrade`") as caught:
        await claim_store_format(client, data_keys=[probe])
    assert caught.value.stored == StoreFormat(1, 1)
    assert await read_store_format(client) is None  # refused: nothing written
    # ... which a layout-1 code (the release before layout 2) takes as its own.
    layout_1_code = StoreFormat(CURRENT_FORMAT, 1)
    assert await claim_store_format(client, layout_1_code, data_keys=[probe]) == StoreFormat(1, 1)
    assert await read_store_format(client) == layout_1_code


async def test_an_engine_older_than_the_data_refuses_to_start(client: aioredis.Redis) -> None:
    await _mark(client, CURRENT_FORMAT + 1, KEY_LAYOUT)
    with pytest.raises(StoreFormatRefused) as caught:
        await claim_store_format(client)
    message = str(caught.value)
    assert f"holds state format {CURRENT_FORMAT + 1}, key layout {KEY_LAYOUT}" in message
    assert f"this release reads state format {CURRENT_FORMAT}" in message
    assert "written by a newer release" in message
    assert caught.value.stored == StoreFormat(CURRENT_FORMAT + 1, KEY_LAYOUT)
    assert await read_store_format(client) == StoreFormat(CURRENT_FORMAT + 1, KEY_LAYOUT)
    # A newer key layout is refused the same way.
    await _mark(client, 1, KEY_LAYOUT + 1)
    with pytest.raises(StoreFormatRefused, match="written by a newer release"):
        await claim_store_format(client)


async def test_the_first_engine_records_the_partition_count_and_another_count_is_refused(
    client: aioredis.Redis,
) -> None:
    await client.delete(keys.META)
    assert await claim_partitions(client, 12) == 12
    assert await client.hget(keys.META, "partitions") == b"12"
    assert await claim_partitions(client, 12) == 12  # the same count: fine
    with pytest.raises(StorePartitionsRefused) as caught:
        await claim_partitions(client, 6)
    assert isinstance(caught.value, StoreRefused)  # the CLI's one-line refusal
    assert "laid out for 12 inbox partitions" in str(caught.value)
    assert "SWITCHYARD_INBOX_PARTITIONS=12" in str(caught.value)
    assert await client.hget(keys.META, "partitions") == b"12"  # not overwritten


async def test_two_engines_starting_at_once_with_other_counts_one_is_refused(
    client: aioredis.Redis,
) -> None:
    await client.delete(keys.META)
    outcomes = await asyncio.gather(
        claim_partitions(client, 12), claim_partitions(client, 6), return_exceptions=True
    )
    refused = [o for o in outcomes if isinstance(o, StorePartitionsRefused)]
    kept = [o for o in outcomes if isinstance(o, int)]
    assert len(refused) == 1
    assert len(kept) == 1
    assert await client.hget(keys.META, "partitions") == str(kept[0]).encode()


async def test_a_newer_engine_records_its_state_format_over_an_older_one(
    client: aioredis.Redis,
) -> None:
    await _mark(client, 1, KEY_LAYOUT)
    newer_code = StoreFormat(CURRENT_FORMAT + 1, KEY_LAYOUT)
    assert await claim_store_format(client, newer_code) == StoreFormat(1, KEY_LAYOUT)
    assert await read_store_format(client) == newer_code
    # Now the older engine is the one refused.
    with pytest.raises(StoreFormatRefused, match="newer release"):
        await claim_store_format(client)


def _run(run_id: str) -> str:
    """The run's key in an inbox of 12 partitions (the default)."""
    return keys.run(run_id, keys.tag_of(run_id, 12))


def _rename(doc: Document) -> Document:
    """A fake state step 1 → 2."""
    doc = dict(doc)
    doc["creator"] = doc.pop("created_by")
    return doc


def _layout_step(prefix: str, calls: list[tuple[int, bool]]) -> LayoutStep:
    """A fake layout step 1 → 2: ``<prefix>old:*`` keys become ``<prefix>new:*``."""

    async def step(client: aioredis.Redis, partitions: int, dry_run: bool, say: Say) -> int:
        calls.append((partitions, dry_run))
        moved = 0
        async for key in client.scan_iter(match=f"{prefix}old:*"):
            if not dry_run:
                await client.rename(key, key.replace(b":old:", b":new:"))
            moved += 1
        say(f"moved {moved}")
        return moved

    return step


async def test_upgrade_takes_layout_steps_and_rewrites_old_states_once(
    client: aioredis.Redis,
) -> None:
    tag = uuid.uuid4().hex[:8]
    run_ids = [f"wfr_{tag}{n:08d}" for n in range(3)]
    old = {r: orjson.dumps({"run_id": r, "created_by": "me", "outputs": {}}) for r in run_ids}
    for run_id, raw in old.items():
        await client.hset(_run(run_id), mapping={"state": raw, "offset": 1})
    prefix = f"sy:test-layout:{tag}:"
    await client.set(f"{prefix}old:a", "1", ex=300)
    await _mark(client, 1, 1)  # an older release's store (the inference: the CLI's test)
    calls: list[tuple[int, bool]] = []
    steps: dict[int, Step] = {**STEPS, CURRENT_FORMAT: _rename}
    layout = {1: _layout_step(prefix, calls)}
    said: list[str] = []

    async def upgrade(dry_run: bool) -> UpgradeReport:
        return await upgrade_store(
            client, dry_run=dry_run, say=said.append, partitions=12,
            steps=steps, layout_steps=layout, runs=f"wfr_{tag}*",
        )  # fmt: skip

    dry = await upgrade(True)
    assert (dry.runs_scanned, dry.runs_upgraded, dry.keys_moved) == (3, 3, 1)
    assert [await client.hget(_run(r), "state") for r in run_ids] == list(old.values())
    assert await client.exists(f"{prefix}old:a") == 1
    assert await read_store_format(client) == StoreFormat(1, 1)  # a dry run writes nothing
    assert "runs: 3 scanned, 3 to upgrade" in said

    done = await upgrade(False)
    assert (done.runs_scanned, done.runs_upgraded, done.keys_moved) == (3, 3, 1)
    for run_id in run_ids:
        stored = await client.hget(_run(run_id), "state")
        assert isinstance(stored, bytes)
        assert stored.startswith(b'{"format":%d,' % (CURRENT_FORMAT + 1))
        assert orjson.loads(stored)["creator"] == "me"
    assert await client.exists(f"{prefix}new:a") == 1
    assert await read_store_format(client) == StoreFormat(CURRENT_FORMAT + 1, 2)
    assert await client.hget(keys.META, "partitions") == b"12"  # the keys moved for 12

    again = await upgrade(False)
    assert (again.runs_scanned, again.runs_upgraded, again.keys_moved) == (3, 0, 0)
    assert calls == [(12, True), (12, False)]  # the layout step is not taken twice
    for run_id in run_ids:
        await client.delete(_run(run_id))
    await client.delete(f"{prefix}new:a")


async def test_upgrade_refuses_a_store_newer_than_the_code(client: aioredis.Redis) -> None:
    await _mark(client, CURRENT_FORMAT + 1, 1)
    with pytest.raises(StoreFormatRefused, match="newer release"):
        await upgrade_store(client, dry_run=True, say=lambda _: None, partitions=12)


def test_the_state_commands(
    own: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SWITCHYARD_REDIS_URL", own.redis_url)
    client = redis.Redis.from_url(own.redis_url)
    found = client.hgetall(keys.META)
    # A layout-1 run (its hash and its entry in the all-runs index): the store is an
    # older release's, whatever else this shared database holds.
    run_id = f"wfr_{uuid.uuid4().hex[:16]}"
    old_run, new_run = f"sy:run:{{{run_id}}}", _run(run_id)
    new_index = keys.runs_all(keys.tag_of(run_id, 12))
    try:
        client.delete(keys.META)
        client.hset(old_run, "offset", 7)
        client.zadd("sy:runs:all", {run_id: 1})
        assert main(["state", "status"]) == 0
        out = capsys.readouterr().out
        assert f"this release: {CODE_FORMAT.describe()}" in out
        assert "store: no marker" in out
        assert main(["state", "upgrade", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "runs: " in out
        assert "key layout 1 → 2 (dry run)" in out
        assert (
            f"store would go from state format 1, key layout 1 to {CODE_FORMAT.describe()}" in out
        )
        assert client.exists(keys.META) == 0  # a dry run writes nothing
        assert (client.exists(old_run), client.exists(new_run)) == (1, 0)
        assert main(["state", "upgrade"]) == 0
        assert f"went from state format 1, key layout 1 to {CODE_FORMAT.describe()}" in (
            capsys.readouterr().out
        )
        assert client.hgetall(keys.META) == {
            b"state_format": str(CODE_FORMAT.state_format).encode(),
            b"key_layout": str(CODE_FORMAT.key_layout).encode(),
            b"partitions": b"12",  # the count the keys were moved for
        }
        assert (client.exists(old_run), client.hget(new_run, "offset")) == (0, b"7")
        assert client.zscore("sy:runs:all", run_id) is None
        assert client.zscore(new_index, run_id) == 1
        assert main(["state", "status"]) == 0
        assert f"store: {CODE_FORMAT.describe()}" in capsys.readouterr().out
        client.hset(keys.META, "state_format", CURRENT_FORMAT + 1)
        assert main(["state", "upgrade"]) == 2
        assert "written by a newer release" in capsys.readouterr().err
    finally:
        client.delete(keys.META, old_run, new_run)
        client.zrem("sy:runs:all", run_id)
        client.zrem(new_index, run_id)
        if found:
            client.hset(keys.META, items=[part for pair in found.items() for part in pair])
        client.close()


async def test_the_engine_process_exits_2_naming_the_formats_on_newer_data(
    own: Settings, client: aioredis.Redis, tmp_path: Path
) -> None:
    """``switchyard engine`` itself checks the marker before it consumes anything."""
    await _mark(client, CURRENT_FORMAT + 1, KEY_LAYOUT)
    env = {**os.environ, **environment(own.model_copy(update={"engine_ops_port": 0}))}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchyard.cli.main", "engine",
        "--ready-file", str(tmp_path / "engine.ready"),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 2, err.decode(errors="replace")[-2000:]
    assert f"holds state format {CURRENT_FORMAT + 1}" in err.decode()
    assert not (tmp_path / "engine.ready").exists()
