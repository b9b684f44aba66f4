"""What a trigger's policy knows about its caller: the actor, and its ``_user`` and
``_team`` entities when the entity store has them (Port keeps custom user and team
properties there; a policy reads them as ``user.<property>`` and ``userTeams.<property>``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from switchyard.bridge.credentials import Actor
from switchyard.engine.store import keys
from switchyard.schemas import SelfServeTriggerConfig
from switchyard.schemas.policy import PolicyFacts

USER_BLUEPRINT = "_user"
TEAM_BLUEPRINT = "_team"


def needs_facts(trigger: SelfServeTriggerConfig) -> bool:
    """Only a policy reads them: every other check is on the actor alone."""
    return trigger.permissions is not None and trigger.permissions.policy is not None


async def caller_facts(
    redis: aioredis.Redis, actor: Actor, form: Mapping[str, Any] | None = None
) -> PolicyFacts:
    """The caller as a policy sees it; entity properties first, the actor's own fields
    (identity, role, teams: what the server vouches for) over them."""
    names = [keys.entity(USER_BLUEPRINT, actor.name)]
    names += [keys.entity(TEAM_BLUEPRINT, team) for team in actor.teams]
    # A GET each in one pipeline, not an MGET: users and teams are two blueprints, two
    # slots of a Redis Cluster.
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.get(name)
        raws = await pipe.execute()
    user_entity, *team_entities = (_properties(raw) for raw in raws)
    return facts_of(actor, user_entity, team_entities, form)


def facts_of(
    actor: Actor,
    user_properties: Mapping[str, Any] | None = None,
    team_properties: Sequence[Mapping[str, Any]] = (),
    form: Mapping[str, Any] | None = None,
) -> PolicyFacts:
    """The facts from the actor and its entities' properties (pure)."""
    user = {
        **(user_properties or {}),
        "$identifier": actor.name, "$title": actor.name, "email": actor.name,
        "port_role": actor.role, "$team": list(actor.teams),
    }  # fmt: skip
    teams = [
        {**(team_properties[i] if i < len(team_properties) else {}),
         "$identifier": team, "$title": team}
        for i, team in enumerate(actor.teams)
    ]  # fmt: skip
    return PolicyFacts(user=user, user_teams=teams, form=form)


def _properties(raw: bytes | str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    entity = orjson.loads(raw)
    properties = entity.get("properties") if isinstance(entity, dict) else None
    return dict(properties) if isinstance(properties, dict) else {}
