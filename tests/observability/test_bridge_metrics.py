"""The bridge's metrics: requests by route template (never a raw path or id), and the
claims: pending read from Redis at the scrape, claimed and acked by outcome."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from switchyard.bridge.metrics import PendingClaims
from switchyard.engine.service import EngineService
from switchyard.engine.store import keys
from tests.bridge import conftest as bridge_fixtures
from tests.bridge.support import Api, integration_workflow, new_installation
from tests.helpers import until

pytestmark = pytest.mark.integration

# The bridge's fixtures: its app over the test Kafka and Redis, and the real engine.
auth_file = bridge_fixtures.auth_file
bridge_settings = bridge_fixtures.bridge_settings
api = bridge_fixtures.api
engine = bridge_fixtures.engine
wf_id = bridge_fixtures.wf_id


def _requests(route: str, method: str, status: int) -> float:
    labels = {"route": route, "method": method, "status": str(status)}
    return REGISTRY.get_sample_value("switchyard_http_requests_total", labels) or 0.0


def _timed(route: str, method: str) -> float:
    labels = {"route": route, "method": method}
    name = "switchyard_http_request_duration_seconds_count"
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def _scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``GET /metrics`` of the bridge: (sample name, sorted labels) → value."""
    response = await api.call("GET", "/metrics", None)
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def test_requests_are_counted_by_route_template_and_status(
    api: Api, engine: EngineService, wf_id: str
) -> None:
    run_route, runs_route = "/v1/workflows/runs/{run_id}", "/v1/workflows/{workflow_id}/runs"
    missing = f"wfr_{uuid.uuid4().hex[:16]}"
    stray = f"/no-such-{uuid.uuid4().hex}"
    before = {
        "run 200": _requests(run_route, "GET", 200),
        "run 404": _requests(run_route, "GET", 404),
        "run timed": _timed(run_route, "GET"),
        "unmatched": _requests("unmatched", "GET", 404),
        "ui": _requests("/ui/{path}", "GET", 200),
        "trigger 201": _requests(runs_route, "POST", 201),
        "refused 413": _requests("unrouted", "POST", 413),
    }
    await api.define(integration_workflow(wf_id, new_installation()))
    run = await api.trigger(wf_id, {"name": "metrics"})
    await api.run(run["identifier"])
    await api.run(run["identifier"])
    assert (await api.call("GET", f"/v1/workflows/runs/{missing}")).status_code == 404
    assert (await api.call("GET", stray)).status_code == 404
    assert (await api.call("GET", "/ui/app.js", None)).status_code == 200
    assert (await api.call("GET", "/ui/index.html", None)).status_code == 200
    too_big = {"inputs": {"name": "x" * 2_000_000}}
    refused = await api.call("POST", f"/v1/workflows/{wf_id}/runs", json=too_big)
    assert refused.status_code == 413, refused.text

    assert _requests(run_route, "GET", 200) - before["run 200"] == 2
    assert _requests(run_route, "GET", 404) - before["run 404"] == 1
    assert _timed(run_route, "GET") - before["run timed"] == 3
    assert _requests("unmatched", "GET", 404) - before["unmatched"] == 1
    assert _requests("/ui/{path}", "GET", 200) - before["ui"] == 2
    assert _requests(runs_route, "POST", 201) - before["trigger 201"] == 1
    # Refused by the body limit before routing: counted, under a label of its own.
    assert _requests("unrouted", "POST", 413) - before["refused 413"] == 1

    scraped = await _scrape(api)
    http = [dict(labels) for (name, labels) in scraped if name.startswith("switchyard_http_")]
    assert http, "no HTTP samples on /metrics"
    for raw in (run["identifier"], missing, stray, wf_id, "app.js"):
        assert not [labels for labels in http if any(raw in v for v in labels.values())], raw
    # The scrape itself is a request like any other: counted once it has answered.
    assert _requests("/metrics", "GET", 200) >= 1


async def _claims_stored(api: Api, installation: str) -> list[int]:
    """The installation's pending claims in each inbox partition (a run's claims live
    in its partition): how many, and 0 where Redis dropped or never had the set."""
    client = api.ctx.redis
    return [int(await client.zcard(keys.claims(installation, tag))) for tag in api.ctx.runs.tags()]


async def _pending(api: Api, wf_id: str, count: int) -> str:
    installation = new_installation()
    await api.define(integration_workflow(wf_id, installation))
    for i in range(count):
        await api.trigger(wf_id, {"name": f"n{i}"})

    async def all_pending() -> bool:
        return sum(await _claims_stored(api, installation)) == count

    await until(all_pending, within=30)
    return installation


async def test_claims_pending_claimed_and_acks(api: Api, engine: EngineService, wf_id: str) -> None:
    installation = await _pending(api, wf_id, 3)
    pending = ("switchyard_claims_pending", (("installation", installation),))
    assert (await _scrape(api))[pending] == 3

    claims_before = _value("switchyard_claim_seconds_count")
    claimed_before = _value("switchyard_claimed_total", {"installation": installation})
    body = {"installationId": installation, "limit": 2, "visibilityTimeoutMs": 60_000}
    response = await api.call("POST", "/v1/workflows/runs/claim-pending", "machine", json=body)
    assert response.status_code == 200, response.text
    first, second = (item["identifier"] for item in response.json()["nodeRuns"])
    assert _value("switchyard_claim_seconds_count") - claims_before == 1
    assert _value("switchyard_claimed_total", {"installation": installation}) - claimed_before == 2

    def acks(outcome: str, who: str = installation) -> float:
        return _value("switchyard_claim_acks_total", {"installation": who, "outcome": outcome})

    async def ack(node_run_id: str) -> int:
        body = {"nodeRunIdentifier": node_run_id}
        response = await api.call("PATCH", "/v1/workflows/runs/ack", "machine", json=body)
        return response.status_code

    unknown_before = acks("unknown", "(unknown)")
    assert await ack(first) == 200
    assert await ack(first) == 409
    assert await ack(f"wfnr_{uuid.uuid4().hex[:16]}") == 404
    assert (acks("acked"), acks("already_acked")) == (1, 1)
    assert acks("unknown", "(unknown)") - unknown_before == 1
    # Claimed but not acked stays in the set (it comes back after its timeout).
    assert (await _scrape(api))[pending] == 2
    assert await ack(second) == 200
    assert (await _scrape(api))[pending] == 1
    response = await api.call("POST", "/v1/workflows/runs/claim-pending", "machine", json=body)
    [last] = response.json()["nodeRuns"]
    assert await ack(last["identifier"]) == 200
    # Redis drops the empty set; the installation stays on the gauge, at 0.
    tags = api.ctx.runs.tags()
    assert await api.ctx.redis.exists(*(keys.claims(installation, tag) for tag in tags)) == 0
    assert (await _scrape(api))[pending] == 0


async def test_claims_pending_reads_each_partitions_claimants_not_the_keyspace(
    api: Api, engine: EngineService, wf_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    installation = await _pending(api, wf_id, 2)
    redis, tags = api.ctx.redis, api.ctx.runs.tags()
    # The apply step that made each claim pending named its installation in the partition.
    registered = [await redis.smembers(keys.claimants(tag)) for tag in tags]
    assert any(installation.encode() in members for members in registered)
    # A pending set of a store from before sy:claimants: found by the first scrape only.
    older, tag = f"older-{uuid.uuid4().hex[:8]}", tags[-1]
    await redis.zadd(keys.claims(older, tag), {f"wfnr_{uuid.uuid4().hex[:16]}": 0})
    scans: list[str] = []
    scan_iter = redis.scan_iter

    def counted(*args: object, **kwargs: object) -> object:
        scans.append(str(kwargs.get("match")))
        return scan_iter(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(redis, "scan_iter", counted)
    source = PendingClaims(redis, tags)
    try:
        for _ in range(3):
            await source.refresh()
            assert _value("switchyard_claims_pending", {"installation": installation}) == 2
            assert _value("switchyard_claims_pending", {"installation": older}) == 1
        assert len(scans) == 1
        assert older.encode() in await redis.smembers(keys.claimants(tag))
    finally:
        await redis.delete(keys.claims(older, tag))
        await redis.srem(keys.claimants(tag), older)
