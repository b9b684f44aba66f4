"""SCHEDULE_TRIGGER definitions through the API: a cron that can fire more often than
every 5 minutes is a 422 that says so, on create and on update; a valid one is stored
with ``published`` defaulting to true."""

from __future__ import annotations

from typing import Any

import pytest

from tests.bridge.support import Api


def _scheduled(identifier: str, cron: str, **config: Any) -> dict[str, Any]:
    return {
        "identifier": identifier,
        "nodes": [
            {"identifier": "every", "config": {"type": "SCHEDULE_TRIGGER", "cron": cron, **config}},
            {"identifier": "work", "config": {"type": "KAFKA", "payload": {}}},
        ],
        "connections": [{"sourceIdentifier": "every", "targetIdentifier": "work"}],
    }


@pytest.mark.parametrize(
    ("cron", "closest"),
    [("* * * * *", "60 s"), ("*/2 * * * *", "120 s"), ("0,3 * * * *", "180 s")],
)
async def test_a_cron_tighter_than_5_minutes_is_422_saying_so(
    api: Api, wf_id: str, cron: str, closest: str
) -> None:
    response = await api.call("POST", "/v1/workflows", json=_scheduled(wf_id, cron))
    assert response.status_code == 422, response.text
    message = response.json()["message"]
    assert message.startswith("nodes[0].config.cron: ")
    assert f"fires every {closest} at its closest" in message
    assert "schedules fire at most every 5 minutes" in message
    assert (await api.call("GET", f"/v1/workflows/{wf_id}")).status_code == 404


async def test_a_5_minute_cron_is_stored_and_an_update_to_a_tighter_one_is_422(
    api: Api, wf_id: str
) -> None:
    # Suspended (published: false) so that no scheduler sharing this Redis fires it.
    created = await api.define(_scheduled(wf_id, " */5  * * * * ", published=False))
    assert created["nodes"][0]["config"] == {
        "type": "SCHEDULE_TRIGGER", "published": False, "cron": "*/5 * * * *",
    }  # fmt: skip
    tighter = await api.call("PUT", f"/v1/workflows/{wf_id}", json=_scheduled(wf_id, "*/4 * * * *"))
    assert tighter.status_code == 422
    assert "at most every 5 minutes" in tighter.json()["message"]
    kept = (await api.call("GET", f"/v1/workflows/{wf_id}")).json()["workflow"]
    assert (kept["version"], kept["nodes"][0]["config"]["cron"]) == (1, "*/5 * * * *")
    assert (await api.call("DELETE", f"/v1/workflows/{wf_id}")).status_code == 200


async def test_published_defaults_to_true(api: Api, wf_id: str) -> None:
    created = await api.define(_scheduled(wf_id, "@daily"))
    try:
        assert created["nodes"][0]["config"]["published"] is True
    finally:
        assert (await api.call("DELETE", f"/v1/workflows/{wf_id}")).status_code == 200
