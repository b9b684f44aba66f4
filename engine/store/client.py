"""The one place a Redis client is built: a single server or a Redis Cluster, with AUTH
and TLS, all from :class:`Settings` (README: Secured connections).

Every process calls :func:`redis_client`, so the settings alone move a deployment to a
password-protected, TLS-only Redis or to a cluster.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from switchyard.schemas.settings import Settings


def redis_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``from_url`` beyond the URL: credentials the URL lacks and
    the TLS files of a ``rediss://`` URL."""
    options: dict[str, Any] = {}
    url = urlsplit(settings.redis_url)
    # Credentials in the URL win (redis-py prefers them too); the settings fill a gap,
    # so a password can stay out of a URL that is logged or shown in `ps`.
    if url.password is None and settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if url.username is None and settings.redis_username is not None:
        options["username"] = settings.redis_username
    if url.scheme == "rediss":
        if settings.redis_ssl_ca_file is not None:
            options["ssl_ca_certs"] = str(settings.redis_ssl_ca_file)
        if settings.redis_ssl_certfile is not None:
            options["ssl_certfile"] = str(settings.redis_ssl_certfile)
            options["ssl_keyfile"] = str(settings.redis_ssl_keyfile)
    return options


def redis_client(settings: Settings, **kwargs: Any) -> aioredis.Redis:
    """A client of the settings' Redis: ``RedisCluster`` when ``redis_cluster`` is on,
    else ``Redis``; ``kwargs`` (timeouts, ``decode_responses``) go to either.

    Typed as ``aioredis.Redis`` for both. ``RedisCluster`` is not a subclass, but it
    implements the same command methods (its ``AsyncRedisClusterCommands`` mirror
    ``AsyncCoreCommands``) and the rest the code base calls: ``pipeline``,
    ``register_script``, ``pubsub``, ``aclose``. What a cluster adds is a rule, not an
    API: the keys of one script or MULTI must share a hash slot (engine/store/keys.py).
    A Protocol of the commands used would say the same with dozens of stubs to keep in
    step with redis-py; this cast is the one place the claim is made.
    """
    options = {**redis_options(settings), **kwargs}
    if settings.redis_cluster:
        return cast(aioredis.Redis, RedisCluster.from_url(settings.redis_url, **options))
    return aioredis.Redis.from_url(settings.redis_url, **options)


async def connect(client: aioredis.Redis) -> None:
    """Load a Redis Cluster client's slot map before any concurrent use.

    Its first command loads the map; several commands at once on a fresh client race
    its connections (redis-py 8: an AttributeError out of one, a connection reset and
    a resend of another). A process calls this once at start, before it serves.
    A single-node client needs nothing.
    """
    if isinstance(cast(object, client), RedisCluster):
        await cast(RedisCluster, cast(object, client)).initialize()
