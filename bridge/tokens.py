"""Signed, expiring access tokens: HS256 JWTs with the client id as ``sub``.

Port's integration framework (Ocean) decodes the token without verifying it and runs
workflow node runs only when its ``isMachine`` claim is true, so the claims carry it
(true for machine credentials, false for users) beside ``sub``, ``iat`` and ``exp``.
We verify the signature, issuer and expiry on every request ourselves.
"""

from __future__ import annotations

import time
from typing import Any

import jwt

from switchyard.bridge.credentials import Actor
from switchyard.bridge.errors import unauthorized

_ISSUER = "switchyard"


class TokenSigner:
    """Issues and checks access tokens."""

    def __init__(self, secret: str, ttl_seconds: int) -> None:
        if len(secret) < 16:
            raise ValueError("the token secret must be at least 16 characters")
        self._secret = secret
        self.ttl_seconds = ttl_seconds

    def issue(self, actor: Actor, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        claims = {
            "sub": actor.client_id,
            "kind": actor.kind,
            "isMachine": actor.is_machine,
            "iss": _ISSUER,
            "iat": issued,
            "exp": issued + self.ttl_seconds,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def client_id(self, token: str) -> str:
        """The client id a valid token names; :class:`ApiError` 401 otherwise."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=_ISSUER,
                options={"require": ["sub", "exp", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("the access token has expired; get a new one") from None
        except jwt.InvalidTokenError:
            raise unauthorized("the access token is invalid") from None
        return str(claims["sub"])
