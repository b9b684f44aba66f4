"""Who answers an INPUT node (SPEC §6, P1): its ``responders`` name users (by email or
client id), roles and teams. Being one is not a privilege: an Admin or a machine
credential answers only when named (by role, too), like anyone else.

Responders of any INPUT node of the workflow version a run is pinned to may view
that run (``views.can_view``, ``run_index`` for lists).
"""

from __future__ import annotations

from collections.abc import Sequence

from switchyard.bridge.credentials import Actor
from switchyard.schemas import InputConfig, Workflow
from switchyard.schemas.workflow import Responders


def is_responder(actor: Actor, responders: Responders) -> bool:
    return names(actor, responders.users, responders.roles, responders.teams)


def names(actor: Actor, users: Sequence[str], roles: Sequence[str], teams: Sequence[str]) -> bool:
    """Whether lists of users (emails or client ids), roles and teams name ``actor``."""
    if actor.role is not None and actor.role in roles:
        return True
    return actor.is_named(list(users)) or any(team in teams for team in actor.teams)


def responds_to(actor: Actor, workflow: Workflow) -> bool:
    """Whether ``actor`` is a responder of one of ``workflow``'s INPUT nodes."""
    return any(
        isinstance(node.config, InputConfig) and is_responder(actor, node.config.responders)
        for node in workflow.nodes
    )
