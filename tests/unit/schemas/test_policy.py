"""Trigger policies: the rule shapes accepted, and how each operator decides."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from switchyard.schemas import WorkflowInvalid, parse_workflow
from switchyard.schemas.policy import Policy, PolicyFacts, allows

ALICE = PolicyFacts(
    user={"$identifier": "alice@example.com", "port_role": "Member", "$team": ["dev", "ops"]},
    user_teams=[{"$identifier": "dev"}, {"$identifier": "ops"}],
    form={"env": "staging", "count": 3, "service": {"$identifier": "svc-a", "tier": "gold"}},
)


def rule(context: str, prop: str, operator: str, value: Any = None) -> dict[str, Any]:
    found: dict[str, Any] = {"property": {"context": context, "property": prop},
                             "operator": operator}  # fmt: skip
    if value is not None:
        found["value"] = value
    return found


def decide(*rules: dict[str, Any], combinator: str = "and", facts: PolicyFacts = ALICE) -> Any:
    return allows(Policy.model_validate({"combinator": combinator, "rules": list(rules)}), facts)


@pytest.mark.parametrize(
    ("a_rule", "expected"),
    [
        (rule("user", "$identifier", "=", "alice@example.com"), True),
        (rule("user", "$identifier", "!=", "alice@example.com"), False),
        (rule("user", "port_role", "in", ["Admin", "Member"]), True),
        (rule("user", "port_role", "notIn", ["Member"]), False),
        (rule("user", "$team", "contains", "ops"), True),
        (rule("user", "$team", "notContains", "ops"), False),
        (rule("user", "$team", "containsAny", ["qa", "dev"]), True),
        (rule("userTeams", "$identifier", "contains", "dev"), True),
        (rule("userTeams", "$identifier", "containsAny", ["qa"]), False),
        (rule("form", "count", ">", 2), True),
        (rule("form", "count", "<=", 2), False),
        (rule("form", "count", ">=", "3"), False),  # a number is not ordered against text
        (rule("form", "env", "=", "staging"), True),
        (rule("form", "env", "contains", "stag"), True),
        (rule("form", "missing", "empty"), True),
        (rule("form", "env", "notEmpty"), True),
        (rule("form", "service.$identifier", "=", "svc-a"), True),
        (rule("form", "service.tier", "=", "gold"), True),
        (rule("form", "env", "=", {"context": "user", "property": "port_role"}), False),
    ],
)
def test_each_operator(a_rule: dict[str, Any], expected: bool) -> None:
    assert decide(a_rule) is expected


def test_combinators_and_groups() -> None:
    yes = rule("form", "env", "=", "staging")
    no = rule("form", "env", "=", "production")
    assert decide(yes, no) is False
    assert decide(yes, no, combinator="or") is True
    assert decide(no, {"combinator": "or", "rules": [no, yes]}) is False
    assert decide(yes, {"combinator": "or", "rules": [no, yes]}) is True


def test_a_rule_on_the_form_is_undecided_until_the_form_is_known() -> None:
    listing = PolicyFacts(user=ALICE.user, user_teams=ALICE.user_teams, form=None)
    on_form = rule("form", "env", "=", "staging")
    on_user = rule("user", "port_role", "=", "Admin")
    assert decide(on_form, facts=listing) is None
    assert decide(on_user, on_form, facts=listing) is False  # the user rule already says no
    assert decide(on_user, on_form, combinator="or", facts=listing) is None


@pytest.mark.parametrize(
    ("policy", "path", "says"),
    [
        ({"queries": {"q": {"rules": []}}, "conditions": [".results"]}, "policy",
         "queries/conditions form of a policy"),
        ({"rules": [rule("user", "x", "like", "y")]}, "policy.rules[0].operator", "(got 'like')"),
        ({"rules": [rule("userTeams", "$identifier", "in", ["dev"])]}, "policy.rules[0]",
         "can't test userTeams"),
        ({"rules": [rule("form", "env", "in", "staging")]}, "policy.rules[0]", "needs a list"),
        ({"rules": [rule("workflowRun", "x", "=", 1)]}, "policy.rules[0].property.context",
         "(got 'workflowRun')"),
        ({"rules": []}, "policy.rules", "at least 1"),
    ],
)  # fmt: skip
def test_policies_this_server_cannot_evaluate_are_refused_at_definition(
    policy: dict[str, Any], path: str, says: str
) -> None:
    trigger = {"type": "SELF_SERVE_TRIGGER", "permissions": {"roles": [], "policy": policy}}
    with pytest.raises(WorkflowInvalid) as caught:
        parse_workflow({"identifier": "wf", "nodes": [{"identifier": "t", "config": trigger}]})
    found = dict(caught.value.problems)
    where = f"nodes[0].config.permissions.{path}"
    matching = [p for p in found if p.startswith(where)]
    assert matching, found
    assert any(says in found[p] for p in matching), found


def test_a_rule_with_a_value_on_empty_is_refused() -> None:
    with pytest.raises(ValidationError, match="takes no value"):
        Policy.model_validate({"rules": [rule("form", "env", "empty", "x")]})
