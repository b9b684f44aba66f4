"""The entity store's pure rules: blueprint checks, entity validation against its
blueprint, replace and merge, and the identifiers derived from a node run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from switchyard.schemas.entities import Blueprint, Entity, EntityEvent
from switchyard.schemas.entity_rules import (
    BlueprintInput,
    BlueprintInvalid,
    EntityInvalid,
    new_blueprint,
    next_entity,
    node_entity_identifier,
    node_event_id,
    parse_entity_input,
    same_content,
)

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def _blueprint(**changes: Any) -> Blueprint:
    body = {
        "identifier": "service",
        "title": "Service",
        "schema": {
            "properties": {
                "lang": {"type": "string", "enum": ["python", "go"]},
                "owner": {"type": "string", "format": "email"},
                "replicas": {"type": "number", "minimum": 1},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["lang"],
        },
        "relations": {
            "team": {"target": "team", "required": True},
            "deps": {"target": "service", "many": True},
        },
        **changes,
    }
    return new_blueprint(BlueprintInput.model_validate(body), {"team"}, "admin", T0)


BLUEPRINT = _blueprint()


def _write(current: Entity | None, change: dict[str, Any], *, merge: bool) -> Entity:
    return next_entity(
        current, parse_entity_input(change), blueprint=BLUEPRINT, identifier="api",
        merge=merge, by="someone", now=T1 if current else T0,
    )  # fmt: skip


STORED = _write(
    None,
    {"title": "API", "icon": "Api", "team": "dev",
     "properties": {"lang": "python", "replicas": 2, "tags": ["a"]},
     "relations": {"team": "platform", "deps": ["db"]}},
    merge=True,
)  # fmt: skip


def test_a_blueprint_takes_ports_shape_and_defaults_its_title() -> None:
    assert BLUEPRINT.title == "Service"
    assert BLUEPRINT.created_by == "admin"
    bare = new_blueprint(BlueprintInput.model_validate({"identifier": "team",
                                                        "ownership": {"type": "Direct"}}),
                         set(), "admin", T0)  # fmt: skip
    assert bare.title == "team"
    assert bare.model_dump(mode="json", exclude_none=True)["schema"] == {
        "properties": {},
        "required": [],
    }


def test_a_blueprint_names_its_problems() -> None:
    body = BlueprintInput.model_validate({
        "identifier": "service",
        "schema": {"properties": {"a": {"type": "string"}}, "required": ["a", "b"]},
        "relations": {"team": {"target": "team"}, "self": {"target": "service"}},
    })  # fmt: skip
    with pytest.raises(BlueprintInvalid) as raised:
        new_blueprint(body, set(), "admin", T0)
    assert raised.value.problems == [
        ("schema.required[1]", "'b' is not a property of the schema"),
        ("relations.team.target", "blueprint team does not exist"),
    ]


def test_identifiers_are_checked() -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        BlueprintInput.model_validate({"identifier": "a b"})
    with pytest.raises(EntityInvalid, match=r"^identifier: must be 1 to 1000"):
        parse_entity_input({"identifier": "a b"})
    assert parse_entity_input({"identifier": "repo/a.b+c@d:e=f-g_h"}).identifier


def test_a_create_stores_what_was_given() -> None:
    assert STORED.team == ["dev"]
    assert STORED.properties == {"lang": "python", "replicas": 2, "tags": ["a"]}
    assert (STORED.created_at, STORED.updated_at) == (T0, T0)
    assert STORED.blueprint == "service"


def test_merge_changes_only_the_given_keys_and_null_removes_one() -> None:
    merged = _write(STORED, {"properties": {"replicas": 3, "tags": None},
                             "relations": {"deps": ["db", "cache"]}}, merge=True)  # fmt: skip
    assert merged.properties == {"lang": "python", "replicas": 3}
    assert merged.relations == {"team": "platform", "deps": ["db", "cache"]}
    assert (merged.title, merged.icon, merged.team) == ("API", "Api", ["dev"])
    assert (merged.created_at, merged.created_by) == (T0, "someone")
    assert merged.updated_at == T1
    retitled = _write(STORED, {"title": "New", "team": ["a", "b"]}, merge=True)
    assert (retitled.title, retitled.team, retitled.properties) == (
        "New",
        ["a", "b"],
        STORED.properties,
    )


def test_replace_drops_what_is_not_given_but_keeps_the_creation_stamp() -> None:
    replaced = _write(STORED, {"properties": {"lang": "go"}, "relations": {"team": "x"}},
                      merge=False)  # fmt: skip
    assert replaced.properties == {"lang": "go"}
    assert replaced.relations == {"team": "x"}
    assert (replaced.title, replaced.team) == (None, [])
    assert (replaced.created_at, replaced.updated_at) == (T0, T1)


@pytest.mark.parametrize(
    ("change", "problems"),
    [
        ({"properties": {"colour": "red"}},
         [("properties.colour", "is not a property of blueprint service "
           "(properties: lang, owner, replicas, tags)")]),
        ({"properties": {"lang": "rust"}},
         [("properties.lang", "must be one of python, go (got 'rust')")]),
        ({"properties": {"owner": "nobody"}},
         [("properties.owner", "must be an email address (got 'nobody')")]),
        ({"properties": {"replicas": 0}}, [("properties.replicas", "must be at least 1 (got 0)")]),
        ({"properties": {"replicas": True}},
         [("properties.replicas", "must be a number (got True)")]),
        ({"properties": {"tags": ["a", 2]}}, [("properties.tags[1]", "must be a string (got 2)")]),
        ({"properties": {"lang": None}}, [("properties.lang", "is required")]),
        ({"relations": {"team": None}}, [("relations.team", "is required")]),
        ({"relations": {"deps": "db"}},
         [("relations.deps", "must be a list of identifiers of entities of service (got 'db')")]),
        ({"relations": {"team": ["a"]}},
         [("relations.team", "must be the identifier of one of the entities of team (got ['a'])")]),
        ({"relations": {"other": "x"}},
         [("relations.other", "is not a relation of blueprint service (relations: team, deps)")]),
    ],
)  # fmt: skip
def test_a_merged_entity_is_checked_against_the_blueprint(
    change: dict[str, Any], problems: list[tuple[str, str]]
) -> None:
    with pytest.raises(EntityInvalid) as raised:
        _write(STORED, change, merge=True)
    assert raised.value.problems == problems


def test_a_create_needs_the_required_properties_and_relations() -> None:
    with pytest.raises(EntityInvalid) as raised:
        _write(None, {"properties": {"replicas": 1}}, merge=True)
    assert raised.value.problems == [
        ("properties.lang", "is required"),
        ("relations.team", "is required"),
    ]


def test_a_malformed_body_names_the_field() -> None:
    with pytest.raises(EntityInvalid) as raised:
        parse_entity_input({"properties": "x", "team": 3}, prefix="mapping")
    assert [path for path, _ in raised.value.problems] == [
        "mapping.team.str",
        "mapping.team.list[str]",
        "mapping.properties",
    ]


def test_same_content_ignores_only_the_update_stamp() -> None:
    again = _write(STORED, {"properties": {"lang": "python"}}, merge=True)
    assert again.updated_at != STORED.updated_at
    assert same_content(STORED, again)
    assert not same_content(STORED, _write(STORED, {"title": "x"}, merge=True))


def test_a_node_runs_identifiers_are_a_function_of_it() -> None:
    node_run = "wfnr_AAAAAAAAAAAAAAAA"
    assert node_entity_identifier(node_run) == node_entity_identifier(node_run)
    assert node_entity_identifier(node_run) != node_entity_identifier("wfnr_AAAAAAAAAAAAAAAB")
    assert parse_entity_input({"identifier": node_entity_identifier(node_run)})
    assert node_event_id(node_run) == f"evt_{node_run}"


def test_an_entity_event_round_trips_in_camel_case() -> None:
    event = EntityEvent.model_validate({
        "id": "evt_1", "action": "UPDATE", "by": "wfr_x", "at": T1,
        "diff": {"before": STORED.model_dump(mode="json"), "after": None},
        "context": {"blueprintIdentifier": "service", "entityIdentifier": "api"},
        "origin": {"workflowIdentifier": "wf", "workflowRunIdentifier": "wfr_x",
                   "nodeRunIdentifier": "wfnr_y", "depth": 2},
    })  # fmt: skip
    wire = event.model_dump(mode="json")
    assert wire["context"] == {"blueprintIdentifier": "service", "entityIdentifier": "api"}
    assert wire["origin"]["nodeRunIdentifier"] == "wfnr_y"
    assert wire["at"] == "2026-12-01T10:05:00.000Z"
    assert event.key() == "service/api"
    assert EntityEvent.model_validate(wire) == event
