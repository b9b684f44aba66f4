"""Failed token requests, limited per client id and per caller address, counted in Redis.

``POST /v1/auth/access_token`` checks a secret with scrypt (tens of milliseconds of
CPU). Without a limit, anyone who can reach the bridge keeps its CPU busy by sending
wrong secrets. :class:`TokenAttempts` stands before that check:

1. a secret this process verified in the last ``auth_verified_cache_seconds`` passes
   at once (:class:`~switchyard.bridge.credentials.VerifiedSecrets`): no Redis, no
   scrypt, never limited;
2. otherwise the attempt takes a place in its client id's window, then in its
   address's (one Lua call each, each key its own slot). A full window answers 429
   with ``Retry-After`` (what is left of it) before any scrypt work;
3. a correct secret gives its places back: successes never count. A wrong one keeps
   them, as a failure.

Taking the place *before* the check, not counting failures after it, bounds the scrypt
checks of a window even under a burst of concurrent attempts (a count read before
and written after lets every attempt of a burst through). The windows are fixed: they
start at their first failure and last ``auth_failure_window_seconds``.

Keys (strings, an integer each; TTL: the window):

* ``sy:auth:fail:client:<sha256 of the client id, 32 hex>``: hashed, so an attacker's
  made-up ids of any length make keys of one small size;
* ``sy:auth:fail:addr:<address>``: ``request.client.host``, the TCP peer (behind a
  reverse proxy: the proxy's, so all callers share it).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from dataclasses import dataclass

import redis.asyncio as aioredis

from switchyard.bridge.credentials import Actor, Credentials, VerifiedSecrets
from switchyard.bridge.errors import ApiError
from switchyard.bridge.metrics import AUTH_LIMITED
from switchyard.schemas.settings import Settings

# KEYS[1]: the window's counter; ARGV: limit, window (s). Returns 0 if the attempt took
# a place, else the window's milliseconds left. A refused attempt takes none: it cost
# nothing, and counting it would only grow the number.
_TAKE = """
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
if n > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  return math.max(redis.call('PTTL', KEYS[1]), 1)
end
return 0
"""

# KEYS[1]: the window's counter. A success gives its place back; never below 0 (the
# window may have ended and another begun since the place was taken).
_GIVE_BACK = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
  redis.call('DECR', KEYS[1])
end
return n
"""


def client_key(client_id: str) -> str:
    digest = hashlib.sha256(client_id.encode()).hexdigest()[:32]
    return f"sy:auth:fail:client:{digest}"


def address_key(address: str) -> str:
    return f"sy:auth:fail:addr:{address}"


def too_many(what: str, limit: int, window_s: int, retry_s: int) -> ApiError:
    message = (
        f"too many failed token requests for {what}: {limit} in {window_s} s; retry in {retry_s} s"
    )
    return ApiError(429, "too_many_requests", message, {"Retry-After": str(retry_s)})


def _shown(client_id: str) -> str:
    # An attacker's id may be as long as a body may be: a message quotes its start.
    return repr(client_id) if len(client_id) <= 64 else repr(client_id[:64] + "...")


@dataclass(frozen=True)
class FailureLimits:
    """``auth_failures_per_client``/``_per_address`` (0: off) per ``window_s``."""

    per_client: int
    per_address: int
    window_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> FailureLimits:
        return cls(
            settings.auth_failures_per_client,
            settings.auth_failures_per_address,
            settings.auth_failure_window_seconds,
        )


class TokenAttempts:
    """Authenticates token requests: the verified-secret cache, the limits, scrypt."""

    def __init__(
        self,
        client: aioredis.Redis,
        credentials: Credentials,
        limits: FailureLimits,
        verified: VerifiedSecrets,
    ) -> None:
        self.credentials = credentials
        self.limits = limits
        self.verified = verified
        self._take = client.register_script(_TAKE)
        self._give_back = client.register_script(_GIVE_BACK)

    @classmethod
    def from_settings(
        cls, settings: Settings, client: aioredis.Redis, credentials: Credentials
    ) -> TokenAttempts:
        verified = VerifiedSecrets(settings.auth_verified_cache_seconds)
        return cls(client, credentials, FailureLimits.from_settings(settings), verified)

    async def authenticate(self, client_id: str, secret: str, address: str) -> Actor | None:
        """The actor, or None for a wrong secret or unknown client id (counted as a
        failure); raises a 429 :class:`ApiError` when a window is full."""
        secret_hash = self.credentials.secret_hash(client_id)
        if secret_hash is not None and self.verified.holds(client_id, secret, secret_hash):
            return self.credentials.actor(client_id)
        taken = await self._take_places(client_id, address)
        # scrypt takes tens of milliseconds: off the event loop.
        actor = await asyncio.to_thread(self.credentials.authenticate, client_id, secret)
        if actor is None:
            return None
        await asyncio.gather(*(self._give_back(keys=[key]) for key in taken))
        if secret_hash is not None:
            self.verified.remember(client_id, secret, secret_hash)
        return actor

    async def _take_places(self, client_id: str, address: str) -> list[str]:
        """The keys this attempt took a place in; raises 429 if one had none left (and
        gives back the places already taken: the attempt is not made)."""
        window, limits = self.limits.window_s, self.limits
        steps = (
            ("client", f"clientId {_shown(client_id)}", client_key(client_id), limits.per_client),
            ("address", f"address {address}", address_key(address), limits.per_address),
        )
        taken: list[str] = []
        for reason, what, key, limit in steps:
            if limit <= 0:
                continue
            left_ms = int(await self._take(keys=[key], args=[limit, window]))
            if left_ms > 0:
                await asyncio.gather(*(self._give_back(keys=[done]) for done in taken))
                AUTH_LIMITED.labels(reason=reason).inc()
                raise too_many(what, limit, window, math.ceil(left_ms / 1000))
            taken.append(key)
        return taken
