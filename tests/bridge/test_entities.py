"""The blueprints and entities API over real Kafka and Redis: every endpoint, its
errors (403/404/409/422, each message naming the field), upsert and merge, and the
entity event each change puts on ``entity-events``."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from switchyard.schemas.entities import EntityEvent
from switchyard.schemas.settings import Settings
from switchyard.topics.partitioning import partition_of
from switchyard.topics.registry import TopicRegistry
from tests.bridge.support import Api
from tests.integration.engine_support import read_all

pytestmark = pytest.mark.integration


def _service_blueprint(identifier: str, team_blueprint: str | None = None) -> dict[str, Any]:
    relations: dict[str, Any] = {}
    if team_blueprint is not None:
        relations = {"owner": {"target": team_blueprint, "title": "Owner"},
                     "deps": {"target": identifier, "many": True}}  # fmt: skip
    return {
        "identifier": identifier,
        "title": "Service",
        "icon": "Service",
        "schema": {
            "properties": {
                "lang": {"type": "string", "enum": ["python", "go"]},
                "url": {"type": "string", "format": "url"},
                "replicas": {"type": "number", "minimum": 1},
            },
            "required": ["lang"],
        },
        "relations": relations,
        "mirrorProperties": {},  # Port's, accepted and ignored
        "calculationProperties": {},
    }


@pytest.fixture
async def blueprint(api: Api) -> str:
    identifier = f"svc-{uuid.uuid4().hex[:8]}"
    created = await api.call("POST", "/v1/blueprints", json=_service_blueprint(identifier))
    assert created.status_code == 201, created.text
    return identifier


async def _events(settings: Settings, key: str) -> list[EntityEvent]:
    topic = TopicRegistry.from_settings(settings).entity_events
    records = await read_all(settings, topic.name)
    found = [r for r in records if r.key == key.encode()]
    for record in found:
        assert record.partition == partition_of(key.encode(), topic.partitions)
    return [EntityEvent.model_validate(orjson.loads(r.value)) for r in found]


async def test_blueprints_are_created_listed_and_read(api: Api) -> None:
    team = f"team-{uuid.uuid4().hex[:8]}"
    assert (await api.call("POST", "/v1/blueprints", json={"identifier": team})).status_code == 201
    identifier = f"svc-{uuid.uuid4().hex[:8]}"
    created = await api.call("POST", "/v1/blueprints", json=_service_blueprint(identifier, team))
    assert created.status_code == 201, created.text
    blueprint = created.json()["blueprint"]
    assert blueprint["identifier"] == identifier
    assert blueprint["relations"]["owner"]["target"] == team
    assert blueprint["createdBy"] == "admin@example.com"
    assert "mirrorProperties" not in blueprint

    again = await api.call("POST", "/v1/blueprints", "machine", json={"identifier": identifier})
    assert again.status_code == 409
    assert again.json()["message"] == f"identifier: blueprint {identifier} already exists"

    listed = await api.call("GET", "/v1/blueprints", "member")
    assert listed.status_code == 200
    assert {identifier, team} <= {b["identifier"] for b in listed.json()["blueprints"]}
    got = await api.call("GET", f"/v1/blueprints/{identifier}", "member")
    assert got.json() == {"ok": True, "blueprint": blueprint}
    missing = await api.call("GET", f"/v1/blueprints/nope-{identifier}")
    assert missing.status_code == 404
    assert missing.json()["message"] == f"blueprint nope-{identifier} not found"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"identifier": "has space"}, 422, "body.identifier: must be 1 to 100 letters"),
        ({"identifier": "x", "schema": {"properties": {}, "required": ["a"]}}, 422,
         "schema.required[0]: 'a' is not a property of the schema"),
        ({"identifier": "x", "relations": {"r": {"target": "nowhere-at-all"}}}, 422,
         "relations.r.target: blueprint nowhere-at-all does not exist"),
        ({"identifier": "x", "schema": {"properties": {"a": {"type": "str"}}}}, 422,
         "body.schema.properties.a.type: Input should be"),
    ],
)  # fmt: skip
async def test_a_bad_blueprint_is_422_naming_the_field(
    api: Api, body: dict[str, Any], status: int, message: str
) -> None:
    body = {**body, "identifier": body["identifier"].replace("x", f"x{uuid.uuid4().hex[:6]}")}
    response = await api.call("POST", "/v1/blueprints", json=body)
    assert response.status_code == status, response.text
    assert response.json()["ok"] is False
    assert response.json()["message"].startswith(message), response.json()["message"]


async def test_members_may_read_but_not_write(api: Api, blueprint: str) -> None:
    answers = [
        await api.call("POST", "/v1/blueprints", "member", json={"identifier": "m-bp"}),
        await api.call("POST", f"/v1/blueprints/{blueprint}/entities", "member",
                       json={"identifier": "a", "properties": {"lang": "go"}}),
        await api.call("DELETE", f"/v1/blueprints/{blueprint}/entities/a", "member"),
    ]  # fmt: skip
    assert [a.status_code for a in answers] == [403, 403, 403]
    assert answers[0].json()["message"] == (
        "member@example.com may not create blueprints (Admins and machine credentials may)"
    )
    assert "may not write entities" in answers[1].json()["message"]
    assert (await api.call("GET", f"/v1/blueprints/{blueprint}/entities", "member")).is_success


async def test_create_then_upsert_replaces_and_merge_changes_only_what_is_given(
    api: Api, blueprint: str, bridge_settings: Settings
) -> None:
    base = f"/v1/blueprints/{blueprint}/entities"
    body = {"identifier": "api", "title": "API", "team": "dev",
            "properties": {"lang": "python", "replicas": 2}}  # fmt: skip
    created = await api.call("POST", base, "machine", json=body)
    assert created.status_code == 201, created.text
    entity = created.json()["entity"]
    assert entity["team"] == ["dev"]
    assert entity["createdBy"] == "ci-bot"
    assert entity["blueprint"] == blueprint

    again = await api.call("POST", base, json=body)
    assert again.status_code == 409
    assert again.json()["message"].startswith(f"identifier: entity api of blueprint {blueprint}")

    merged = await api.call("POST", f"{base}?upsert=true&merge=true",
                            json={"identifier": "api", "properties": {"replicas": 3}})  # fmt: skip
    assert merged.status_code == 200, merged.text
    after_merge = merged.json()["entity"]
    assert after_merge["properties"] == {"lang": "python", "replicas": 3}
    assert after_merge["title"] == "API"
    assert after_merge["team"] == ["dev"]
    assert after_merge["createdBy"] == "ci-bot"
    assert after_merge["updatedBy"] == "admin@example.com"

    replaced = await api.call("POST", f"{base}?upsert=true",
                              json={"identifier": "api", "properties": {"lang": "go"}})  # fmt: skip
    assert replaced.status_code == 200
    after_replace = replaced.json()["entity"]
    assert after_replace["properties"] == {"lang": "go"}
    assert after_replace["title"] is None
    assert after_replace["createdAt"] == entity["createdAt"]

    got = await api.call("GET", f"{base}/api", "member")
    assert got.json() == {"ok": True, "entity": after_replace}
    deleted = await api.call("DELETE", f"{base}/api")
    assert deleted.json() == {"ok": True}
    assert (await api.call("GET", f"{base}/api")).status_code == 404
    assert (await api.call("DELETE", f"{base}/api")).status_code == 404

    # One event per change, in order, each diff exactly the entities the API returned.
    events = await _events(bridge_settings, f"{blueprint}/api")
    assert [e.action for e in events] == ["CREATE", "UPDATE", "UPDATE", "DELETE"]
    assert [(e.diff.before, e.diff.after) for e in events] == [
        (None, entity),
        (entity, after_merge),
        (after_merge, after_replace),
        (after_replace, None),
    ]
    assert [e.by for e in events] == ["ci-bot"] + ["admin@example.com"] * 3
    assert len({e.id for e in events}) == 4
    assert all(e.origin is None for e in events)


async def test_a_write_that_changes_nothing_emits_no_event(
    api: Api, blueprint: str, bridge_settings: Settings
) -> None:
    base = f"/v1/blueprints/{blueprint}/entities?upsert=true&merge=true"
    body = {"identifier": "same", "properties": {"lang": "go"}}
    assert (await api.call("POST", base, json=body)).status_code == 201
    assert (await api.call("POST", base, json=body)).status_code == 200
    events = await _events(bridge_settings, f"{blueprint}/same")
    assert [e.action for e in events] == ["CREATE"]


async def test_an_entity_without_identifier_gets_one_and_lists_page(
    api: Api, blueprint: str
) -> None:
    base = f"/v1/blueprints/{blueprint}/entities"
    made = []
    for n in range(3):
        body = {"properties": {"lang": "go", "replicas": n + 1}}
        created = await api.call("POST", base, json=body)
        assert created.status_code == 201, created.text
        made.append(created.json()["entity"]["identifier"])
    assert len(set(made)) == 3
    assert all(m.startswith("e_") for m in made)
    page = (await api.call("GET", f"{base}?limit=2&offset=1", "member")).json()
    assert page["total"] == 3
    assert [e["identifier"] for e in page["entities"]] == made[1:]
    assert (await api.call("GET", f"{base}?limit=0")).json()["message"].startswith("query.limit:")
    missing = await api.call("GET", f"/v1/blueprints/nope-{blueprint}/entities")
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"properties": {"lang": "go", "colour": "red"}},
         "properties.colour: is not a property of blueprint {bp} "
         "(properties: lang, url, replicas)"),
        ({"properties": {"lang": "rust"}},
         "properties.lang: must be one of python, go (got 'rust')"),
        ({"properties": {"lang": "go", "replicas": "2"}},
         "properties.replicas: must be a number (got '2')"),
        ({"properties": {"lang": "go", "url": "ftp:/x"}},
         "properties.url: must be an http(s) URL (got 'ftp:/x')"),
        ({"properties": {"replicas": 2}}, "properties.lang: is required"),
        ({"properties": {"lang": "go"}, "relations": {"owner": "x"}},
         "relations.owner: is not a relation of blueprint {bp} (relations: none)"),
        ({"identifier": "a b", "properties": {"lang": "go"}}, "body.identifier: must be 1 to 1000"),
        ({"properties": "lang"}, "body.properties: Input should be a valid dictionary"),
        ({"properties": {"lang": 10**30}}, "body: can't be stored: Integer exceeds 64-bit range"),
    ],
)  # fmt: skip
async def test_a_bad_entity_is_422_naming_the_field(
    api: Api, blueprint: str, body: dict[str, Any], message: str
) -> None:
    response = await api.call("POST", f"/v1/blueprints/{blueprint}/entities", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith(message.format(bp=blueprint))


async def test_relations_are_checked_against_the_blueprint(api: Api) -> None:
    team = f"team-{uuid.uuid4().hex[:8]}"
    service = f"svc-{uuid.uuid4().hex[:8]}"
    await api.call("POST", "/v1/blueprints", json={"identifier": team})
    await api.call("POST", "/v1/blueprints", json=_service_blueprint(service, team))
    base = f"/v1/blueprints/{service}/entities"
    body = {"properties": {"lang": "go"}, "relations": {"owner": ["a"], "deps": "b"}}
    wrong = await api.call("POST", base, json=body)
    assert wrong.status_code == 422
    assert wrong.json()["message"] == (
        f"relations.owner: must be the identifier of one of the entities of {team} (got ['a']); "
        f"relations.deps: must be a list of identifiers of entities of {service} (got 'b')"
    )
    # The targets need not exist.
    body = {"properties": {"lang": "go"}, "relations": {"owner": "t1", "deps": ["x", "y"]}}
    right = await api.call("POST", base, json=body)
    assert right.status_code == 201, right.text
    assert right.json()["entity"]["relations"] == {"owner": "t1", "deps": ["x", "y"]}


async def test_a_missing_blueprint_is_404_for_writes(api: Api) -> None:
    response = await api.call("POST", "/v1/blueprints/none-such-bp/entities", json={})
    assert response.status_code == 404
    assert response.json()["message"] == "blueprint none-such-bp not found"
