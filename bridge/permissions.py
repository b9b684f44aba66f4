"""SPEC §6, as predicates over an actor: who may run, view, update, claim, ack, cancel.

Admins and machine credentials may do everything. The rest:

- run: the self-service trigger's ``permissions`` name the actor's role, email or
  client id, or one of its teams, or its ``policy`` rules allow it (schemas/policy.py);
  no permissions set means Admins only;
- view a run: its creator, or anyone when the workflow's ``allowAnyoneToViewRuns``
  (the flag of its newest version: turning it off hides the old runs too), or a
  responder of an INPUT node of the version it is pinned to (``responders.py``);
- answer an INPUT node: its responders only, Admins and machines included
  (``responders.py``);
- update node runs, claim, ack, list stuck runs: nobody else;
- cancel and re-run: the run's creator.
"""

from __future__ import annotations

from switchyard.bridge.credentials import Actor
from switchyard.bridge.policy_facts import facts_of
from switchyard.schemas import SelfServeTriggerConfig
from switchyard.schemas.policy import PolicyFacts, allows


def may_run(
    actor: Actor, trigger: SelfServeTriggerConfig, facts: PolicyFacts | None = None
) -> bool:
    """Whether ``actor`` may run ``trigger``: Admins and machines always; others when a
    static entry (role, user, team) names them, or else when the ``policy`` allows
    them (``facts``: bridge/policy_facts.py; without a form, as when listing
    workflows, a policy that depends on the form counts as a way in)."""
    if actor.is_privileged:
        return True
    rules = trigger.permissions
    if rules is None:
        return False
    if actor.role is not None and actor.role in rules.roles:
        return True
    if actor.is_named(rules.users) or any(team in rules.teams for team in actor.teams):
        return True
    if rules.policy is None:
        return False
    return allows(rules.policy, facts or facts_of(actor)) is not False


def may_view(actor: Actor, created_by: str, allow_anyone: bool) -> bool:
    return actor.is_privileged or allow_anyone or created_by == actor.name


def may_operate(actor: Actor) -> bool:
    """Update node runs, claim and ack."""
    return actor.is_privileged


def may_cancel(actor: Actor, created_by: str) -> bool:
    """Cancel a run, or re-run it."""
    return actor.is_privileged or created_by == actor.name


def may_list_stuck(actor: Actor) -> bool:
    """``GET /v1/workflows/runs?stuck=true``: an operator's diagnostic."""
    return actor.is_privileged


def may_edit_workflows(actor: Actor) -> bool:
    return actor.is_privileged
