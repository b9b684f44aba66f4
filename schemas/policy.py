"""A self-service trigger's ``permissions.policy``: rules over the caller and the form.

Port's shape: ``{combinator: "and"|"or", rules: [{property: {context, property},
operator, value}]}``, where a rule may itself be a group ``{combinator, rules}`` and
``value`` may be another ``{context, property}``. Contexts: ``user`` (the caller:
``$identifier`` its email or name, ``$title``, ``port_role``, ``$team``, and the
properties of its ``_user`` entity when the entity store has one), ``userTeams`` (one
object per team: ``$identifier``, ``$title`` and its ``_team`` entity's properties;
a property of it is the list of the teams' values), ``form`` (the submitted inputs;
``input.$identifier`` reads an entity input's identifier, ``input.<key>`` a key of an
object input). The policy is an extra way in, checked for callers no static entry
(roles, users, teams) admits; Admins and machine credentials may always run.

Port's oldest form (``queries`` + jq ``conditions``) needs its catalog search and is
refused at definition with a 422 saying so, rather than accepted and ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from switchyard.schemas.base import WireModel

PolicyContext = Literal["user", "userTeams", "form"]
Operator = Literal[
    "=", "!=", ">", "<", ">=", "<=", "in", "notIn", "contains", "notContains", "containsAny",
    "empty", "notEmpty",
]  # fmt: skip
_NO_VALUE = frozenset({"empty", "notEmpty"})
# A property of userTeams is a list (one value per team): Port rejects these on it.
_SCALAR_LEFT = frozenset({"in", "notIn"})


class PropertyRef(WireModel):
    context: PolicyContext
    property: str = Field(min_length=1, max_length=200)


class PolicyRule(WireModel):
    property: PropertyRef
    operator: Operator
    value: PropertyRef | Any = None

    @model_validator(mode="before")
    @classmethod
    def _reference(cls, data: Any) -> Any:
        # ``value: {context, property}`` compares two dynamic values.
        if isinstance(data, dict) and isinstance(data.get("value"), dict):
            value = data["value"]
            if set(value) == {"context", "property"}:
                data = {**data, "value": PropertyRef.model_validate(value)}
        return data

    @model_validator(mode="after")
    def _operands(self) -> PolicyRule:
        if self.operator in _NO_VALUE and self.value is not None:
            raise ValueError(f"operator {self.operator!r} takes no value")
        if self.operator in {"in", "notIn", "containsAny"} and not isinstance(
            self.value, list | PropertyRef
        ):
            raise ValueError(f"operator {self.operator!r} needs a list value")
        if self.operator in _SCALAR_LEFT and self.property.context == "userTeams":
            raise ValueError(
                f"operator {self.operator!r} can't test userTeams (a list of the teams' values);"
                " use contains or containsAny"
            )
        return self


def _rule_or_group(value: Any) -> str:
    if isinstance(value, dict):
        return GROUP_TAG if "rules" in value or "combinator" in value else RULE_TAG
    return GROUP_TAG if isinstance(value, Policy) else RULE_TAG


# The union's tags, which error paths leave out (schemas/problems.py).
RULE_TAG, GROUP_TAG = "policy-rule", "policy-group"


class Policy(WireModel):
    combinator: Literal["and", "or"] = "and"
    rules: list[
        Annotated[
            Annotated[PolicyRule, Tag(RULE_TAG)] | Annotated[Policy, Tag(GROUP_TAG)],
            Discriminator(_rule_or_group),
        ]
    ] = Field(min_length=1, max_length=50)

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("queries" in data or "conditions" in data):
            raise ValueError(
                "the queries/conditions form of a policy (catalog searches and jq over "
                "their results) is not supported by this server; give {combinator, rules}"
            )
        return data


@dataclass(frozen=True)
class PolicyFacts:
    """What a policy is evaluated against. ``form`` None: not known yet (listing the
    workflows a caller may run), so a rule on it is undecided."""

    user: Mapping[str, Any]
    user_teams: Sequence[Mapping[str, Any]] = field(default_factory=list)
    form: Mapping[str, Any] | None = None


_UNKNOWN = object()


def allows(policy: Policy, facts: PolicyFacts) -> bool | None:
    """True or False; None when it depends on a form that isn't known yet."""
    results = [_decide(rule, facts) for rule in policy.rules]
    if policy.combinator == "and":
        if False in results:
            return False
        return None if None in results else True
    if True in results:
        return True
    return None if None in results else False


def _decide(rule: PolicyRule | Policy, facts: PolicyFacts) -> bool | None:
    if isinstance(rule, Policy):
        return allows(rule, facts)
    left = _resolve(rule.property, facts)
    right = _resolve(rule.value, facts) if isinstance(rule.value, PropertyRef) else rule.value
    if left is _UNKNOWN or right is _UNKNOWN:
        return None
    return _compare(rule.operator, left, right)


def _resolve(ref: PropertyRef, facts: PolicyFacts) -> Any:
    if ref.context == "user":
        return facts.user.get(ref.property)
    if ref.context == "userTeams":
        return [team.get(ref.property) for team in facts.user_teams]
    if facts.form is None:
        return _UNKNOWN
    name, _, key = ref.property.partition(".")
    value = facts.form.get(name)
    if not key:
        return value
    if isinstance(value, Mapping):
        return value.get(key, value.get(key.removeprefix("$")))
    # An entity input given as its identifier: $identifier is that string.
    return value if key == "$identifier" else None


def _compare(operator: Operator, left: Any, right: Any) -> bool:
    if operator == "=":
        return left == right or (isinstance(left, list) and right in left)
    if operator == "!=":
        return not _compare("=", left, right)
    if operator in {">", "<", ">=", "<="}:
        return _ordered(operator, left, right)
    if operator == "in":
        return isinstance(right, list) and left in right
    if operator == "notIn":
        return isinstance(right, list) and left not in right
    if operator == "contains":
        return _contains(left, right)
    if operator == "notContains":
        return not _contains(left, right)
    if operator == "containsAny":
        return isinstance(right, list) and any(_contains(left, item) for item in right)
    empty = left is None or left == "" or left == [] or left == {}
    return empty if operator == "empty" else not empty


def _contains(left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return right in left
    return isinstance(left, list) and right in left


def _ordered(operator: str, left: Any, right: Any) -> bool:
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
    if not numbers and not (isinstance(left, str) and isinstance(right, str)):
        return False
    if operator == ">":
        return bool(left > right)
    if operator == "<":
        return bool(left < right)
    if operator == ">=":
        return bool(left >= right)
    return bool(left <= right)
