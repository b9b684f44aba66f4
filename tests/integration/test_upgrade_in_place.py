"""A stack holding waiting runs of an earlier release, upgraded in place, completes them.

``tests/fixtures/upgrade/<release>/`` holds what that release's engine left in Redis
and on its inbox for runs waiting on KAFKA nodes (one past its first step, one with
an external run id, one of an entity), on a node and a run deadline (armed timers),
and on a pending claim, and for a run finished before, captured by
``scripts/capture_upgrade_fixtures.py`` with that release's code. The test writes it
into a Redis database of this session's own, replays the inbox records onto fresh
topics at their partitions and offsets (the stored runs remember the offsets they
applied: replayed, they are redeliveries the engine must skip), sees this release's
engine refuse the older key layout, runs ``switchyard state upgrade`` (key layout 1 →
2: every key the capture holds is then where layout 2 keeps it, and no layout-1 key
is left; a second upgrade moves nothing), starts *this* release's engine and bridge,
and finishes every run as its workers would: a ``NodeRunUpdated`` for KAFKA nodes,
claim → ack → PATCH for the claim; a worker finds its node run by its external id, and
the list queries find every run by workflow, status, result and entity.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from switchyard.bridge.app import create_app
from switchyard.bridge.credentials import hash_secret
from switchyard.cli.stack.full import environment
from switchyard.engine.machine.state_format import CURRENT_FORMAT, needs_upgrade
from switchyard.engine.service import EngineService
from switchyard.engine.store import keys
from switchyard.engine.store.slots import partition_tag
from switchyard.engine.store.upgrade import (
    CODE_FORMAT,
    StoreFormat,
    StoreFormatRefused,
    claim_store_format,
)
from switchyard.schemas import NodeRunUpdated, encode
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from tests.bridge.support import SECRET, TOKEN_SECRET, Api
from tests.helpers import private_redis_db
from tests.integration import layout_1
from tests.integration.engine_support import Driver
from tests.integration.layout_1 import text as _text
from tests.integration.layout_1 import value as _bytes

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "upgrade"
RELEASES = sorted(p.name for p in FIXTURES.iterdir() if (p / "manifest.json").exists())


@dataclass(frozen=True)
class Capture:
    """One release's capture: the manifest, the Redis entries, the inbox records."""

    manifest: dict[str, Any]
    redis: dict[str, dict[str, Any]]
    inbox: list[dict[str, Any]]

    @classmethod
    def load(cls, release: str) -> Capture:
        def read(name: str) -> Any:
            return orjson.loads((FIXTURES / release / name).read_bytes())

        return cls(read("manifest.json"), read("redis.json"), read("inbox.json"))

    def state(self, run_id: str) -> bytes:
        """The run's state document as the release stored it (layout 1's key)."""
        fields = {_bytes(f): _bytes(v) for f, v in self.redis[f"sy:run:{{{run_id}}}"]["value"]}
        return fields[b"state"]


async def restore(client: aioredis.Redis, capture: Capture, partitions: int) -> None:
    """Write the capture into ``client``'s database. A key the capture owns whole is
    replaced; into a shared index (run sets, node-run buckets, timers, the event
    stream) only its members are added, next to other runs'. What an earlier test
    left of it in layout 2's keys is removed first: only the upgrade puts it there."""
    # Releases before the capture recorded its key layout wrote layout 1.
    assert capture.manifest.get("keyLayout", 1) == 1, "this test upgrades layout-1 stores"
    await layout_1.forget_moved(client, partitions, capture.redis)
    for key, entry in capture.redis.items():
        await layout_1.write_entry(client, key, entry)
    for node_type, count in capture.manifest["nodeRunsInFlight"].items():
        await client.hincrby(_IN_FLIGHT_1, node_type, count)


_IN_FLIGHT_1 = "sy:stats:node-runs-in-flight"  # layout 1's one hash of counts


async def replay_inbox(settings: Settings, capture: Capture) -> None:
    """The captured inbox records, each at its partition and (fresh topic) offset."""
    topic = TopicRegistry.from_settings(settings).inbox.name
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for record in capture.inbox:
            sent = await producer.send_and_wait(
                topic, _bytes(record["value"]), key=_bytes(record["key"]),
                partition=record["partition"],
                headers=[(h, _bytes(v)) for h, v in record["headers"]],
            )  # fmt: skip
            assert (sent.partition, sent.offset) == (record["partition"], record["offset"])
    finally:
        await producer.stop()


@pytest.fixture(params=RELEASES)
def release(request: pytest.FixtureRequest) -> str:
    """Each release a capture was made of."""
    name: str = request.param
    return name


@pytest.fixture
async def stack_settings(
    settings: Settings, session_tag: str, tmp_path: Path, release: str
) -> Settings:
    """This session's own Redis database, topics of this test's own (fresh offsets), the
    release's inbox partition count, and a bridge with a machine and an admin."""
    auth = tmp_path / "auth.json"
    secret_hash = hash_secret(SECRET)
    auth.write_bytes(orjson.dumps({
        "users": [{"email": "admin@example.com", "role": "Admin", "teams": [],
                   "clientId": "admin", "clientSecretHash": secret_hash}],
        "machines": [{"name": "worker", "clientId": "machine", "clientSecretHash": secret_hash}],
    }))  # fmt: skip
    found = private_redis_db(settings, session_tag).model_copy(update={
        "topic_prefix": f"{settings.topic_prefix}up{uuid.uuid4().hex[:6]}.",
        "inbox_partitions": Capture.load(release).manifest["inboxPartitions"],
        "auth_file": auth, "token_secret": SecretStr(TOKEN_SECRET),
    })  # fmt: skip
    await ensure_topics(found)
    return found


@pytest.fixture
async def client(stack_settings: Settings) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(stack_settings.redis_url)
    yield redis
    await redis.aclose()


async def _in_flight(client: aioredis.Redis, partitions: int) -> dict[str, int]:
    """The gauge's counts: the sum over the partitions' (and layout 1's) hashes."""
    total: dict[str, int] = {}
    names = [keys.node_runs_in_flight(partition_tag(p, partitions)) for p in range(partitions)]
    for name in [*names, _IN_FLIGHT_1]:
        for kind, count in (await client.hgetall(name)).items():
            total[_text(kind)] = total.get(_text(kind), 0) + int(count)
    return {kind: count for kind, count in total.items() if count}


async def _state_upgrade(settings: Settings) -> str:
    """``switchyard state upgrade`` on ``settings``'s Redis and inbox: its output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchyard.cli.main", "state", "upgrade",
        env={**os.environ, **environment(settings)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, out.decode(errors="replace")[-2000:]
    return out.decode()


async def _claim_ack_patch(api: Api, installation: str, node_run_id: str, output: Any) -> None:
    """What an integration worker does: claim the pending node run, ack it, PATCH it."""
    claimed = await api.call("POST", "/v1/workflows/runs/claim-pending", "machine",
                             json={"installationId": installation, "limit": 10})  # fmt: skip
    assert claimed.status_code == 200, claimed.text
    assert [item["identifier"] for item in claimed.json()["nodeRuns"]] == [node_run_id]
    ack = await api.call("PATCH", "/v1/workflows/runs/ack", "machine",
                         json={"nodeRunIdentifier": node_run_id})  # fmt: skip
    assert ack.status_code == 200, ack.text
    body = {"status": "COMPLETED", "result": "SUCCESS", "output": output}
    done = await api.call("PATCH", f"/v1/workflows/nodes/runs/{node_run_id}", "machine", json=body)
    assert done.status_code == 200, done.text


async def _finish(driver: Driver, api: Api, redis: aioredis.Redis, run: dict[str, Any]) -> None:
    """Report each node run the run still waits on, in order, as its worker would."""
    run_id = run["runId"]
    tag = keys.tag_of(run_id, driver.settings.inbox_partitions)
    for step in run["remaining"]:
        node, node_run_id = step["node"], step["nodeRunId"]
        await driver.wait(run_id, lambda s, n=node: any(
            nr.node == n and nr.status == "IN_PROGRESS" for nr in s.node_runs))  # fmt: skip
        installation = await redis.hget(keys.claim(node_run_id, tag), "installation")
        if installation is not None:
            await _claim_ack_patch(api, _text(installation), node_run_id, step["output"])
            continue
        await driver.send(run_id, encode(NodeRunUpdated.model_validate({
            "runId": run_id, "nodeRunId": node_run_id, "status": "COMPLETED",
            "result": "SUCCESS", "output": step["output"], "sentAt": datetime.now(UTC),
        })))  # fmt: skip


async def test_waiting_runs_of_a_release_complete_after_an_in_place_upgrade(
    release: str, stack_settings: Settings, client: aioredis.Redis, templates: Any
) -> None:
    capture = Capture.load(release)
    runs = capture.manifest["runs"]
    partitions = stack_settings.inbox_partitions
    in_flight_before = await _in_flight(client, partitions)
    await client.delete(keys.META)  # the release wrote no marker
    await restore(client, capture, partitions)
    assert await layout_1.check_moved(client, partitions, capture.redis) != []  # not yet
    await replay_inbox(stack_settings, capture)

    # The engine's start-up check: data from before the marker is format 1, layout 1,
    # which this release refuses until it is upgraded; the refusal writes nothing.
    with pytest.raises(StoreFormatRefused, match="run `switchyard state upgrade`") as caught:
        await claim_store_format(client)
    assert caught.value.stored == StoreFormat(1, 1)
    assert await client.exists(keys.META) == 0

    said = await _state_upgrade(stack_settings)
    assert "key layout 1 → 2" in said
    assert f"to {CODE_FORMAT.describe()}" in said
    # Everything the release wrote is where layout 2 keeps it, and nothing is left
    # under layout 1's names; the marker records the count the keys were moved for.
    assert await layout_1.check_moved(client, partitions, capture.redis) == []
    assert await layout_1.layout_1_keys(client) == []
    assert await client.hget(keys.META, "partitions") == str(partitions).encode()
    in_flight_added = capture.manifest["nodeRunsInFlight"]
    assert await _in_flight(client, partitions) == _plus(in_flight_before, in_flight_added)
    again = await _state_upgrade(stack_settings)
    assert ": 0 keys moved, 0 of " in again  # nothing left to move (or to rewrite)
    assert "key layout" not in again.split("store went from")[0]  # no layout step taken
    assert await claim_store_format(client) == CODE_FORMAT

    app = create_app(stack_settings)
    async with (
        EngineService(stack_settings, templates),
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as http,
        EventProducer(stack_settings) as producer,
    ):
        api, driver = Api(http, app), Driver(stack_settings, client, producer)
        await _find_by_external_ids(api, runs)
        for run in runs:
            await _finish(driver, api, client, run)
        for run in runs:
            state = await driver.wait(run["runId"], lambda s: s.status == "COMPLETED")
            assert state.result == "SUCCESS", run["runId"]
            expected = {
                **run["completedBefore"],
                **{s["node"]: s["output"] for s in run["remaining"]},
            }
            assert {n: state.outputs[n] for n in expected} == expected
            assert state.outputs["trigger"] == run["inputs"]
            tag = keys.tag_of(run["runId"], partitions)
            raw = await client.hget(keys.run(run["runId"], tag), "state")
            assert raw is not None
            # Read in the release's format (no "format" key), rewritten in this one's
            # by the steps that finished it (a run finished before: as it was moved).
            assert not orjson.loads(capture.state(run["runId"])).get("format")
            if run["remaining"]:
                assert _text(raw).encode().startswith(b'{"format":%d,' % CURRENT_FORMAT)
            assert not needs_upgrade(_text(raw).encode())
            shown = await api.call("GET", f"/v1/workflows/runs/{run['runId']}", "admin")
            assert shown.status_code == 200, shown.text
            assert shown.json()["workflowRun"]["status"] == "COMPLETED"
        await _listed_by_their_indexes(api, runs)

    # Completing the runs disarmed their deadlines and took their claims away, in the
    # partitions the upgrade moved them to.
    timers = capture.redis.get("sy:timers:details", {"value": []})["value"]
    assert timers, "the capture holds armed timers"
    for timer_id, details in timers:
        tag = keys.tag_of(orjson.loads(_bytes(details))["runId"], partitions)
        assert await client.zscore(keys.timers(tag), _bytes(timer_id)) is None
        assert await client.hget(keys.timer_details(tag), _bytes(timer_id)) is None
    claims = [k for k in capture.redis if k.startswith("sy:claim:")]
    assert claims, "the capture holds a pending claim"
    for key in claims:
        fields = {_bytes(f): _bytes(v) for f, v in capture.redis[key]["value"]}
        node_run_id, tag = key[len("sy:claim:") :], keys.tag_of(_text(fields[b"run"]), partitions)
        assert await client.exists(keys.claim(node_run_id, tag)) == 0
        pending = keys.claims(_text(fields[b"installation"]), tag)
        assert await client.zscore(pending, node_run_id) is None
    assert await _in_flight(client, partitions) == in_flight_before  # the release's counts went on


async def _find_by_external_ids(api: Api, runs: list[dict[str, Any]]) -> None:
    """A worker finds its node run by the external id the release applied."""
    given = [(r["runId"], nr, ext) for r in runs for nr, ext in r["externalRunIds"].items()]
    assert given, "the capture holds an external run id"
    for run_id, node_run_id, external in given:
        found = await api.call("GET", f"/v1/workflows/nodes/runs?external_run_id={external}",
                               "machine")  # fmt: skip
        assert found.status_code == 200, found.text
        items = found.json()["nodeRuns"]
        assert [(i["identifier"], i["workflowRun"]["identifier"]) for i in items] == [
            (node_run_id, run_id)
        ]


async def _listed_by_their_indexes(api: Api, runs: list[dict[str, Any]]) -> None:
    """The list queries read the indexes the upgrade split by partition: by workflow,
    by status and result (the run finished before the upgrade with the others), by
    entity (a self-service trigger's entity-format input)."""
    assert any(not r["remaining"] for r in runs), "the capture holds a finished run"
    for workflow in {r["workflow"] for r in runs}:
        done = {"workflowIdentifiers": workflow, "statuses": "COMPLETED", "results": "SUCCESS"}
        listed = await api.call("GET", "/v1/workflows/runs", "admin", params=done)
        assert listed.status_code == 200, listed.text
        ids = {r["identifier"] for r in listed.json()["workflowRuns"]}
        assert ids == {r["runId"] for r in runs if r["workflow"] == workflow}
    owned = [r for r in runs if "owner" in r["inputs"]]
    assert owned, "the capture holds runs of an entity"
    blueprint = _blueprint(owned[0]["workflow"])
    for owner in {r["inputs"]["owner"] for r in owned}:
        listed = await api.call("GET", "/v1/workflows/runs", "admin",
                                params={"entity": f"{blueprint}/{owner}"})  # fmt: skip
        assert listed.status_code == 200, listed.text
        ids = {r["identifier"] for r in listed.json()["workflowRuns"]}
        assert ids == {r["runId"] for r in owned if r["inputs"]["owner"] == owner}


def _blueprint(workflow: str) -> str:
    """The blueprint of the capture's entity inputs: ``team-<the capture's tag>``."""
    return "team-" + workflow.rsplit("-", 1)[1]


def _plus(counts: dict[str, int], added: dict[str, int]) -> dict[str, int]:
    return {k: counts.get(k, 0) + added.get(k, 0) for k in {*counts, *added}}
