"""``POST /v1/auth/access_token`` and the ``Authorization: Bearer`` check of every route.

Tokens are HS256 JWTs signed with ``settings.token_secret``: ``sub`` is the client id,
``exp`` the expiry. The actor is looked up again on every request, so a credential
removed from the auth file stops working at the bridge's next start.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from switchyard.bridge.context import BridgeContext, context
from switchyard.bridge.credentials import Actor
from switchyard.bridge.errors import json_response, unauthorized

_bearer = HTTPBearer(auto_error=False, description="An access token from /v1/auth/access_token.")


async def current_actor(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The caller, from ``Authorization: Bearer <token>``; 401 without a valid one."""
    if not request.headers.get("authorization"):
        raise unauthorized("Authorization header is required: Bearer <access token>")
    if bearer is None or not bearer.credentials.strip():
        raise unauthorized("Authorization header must be: Bearer <access token>")
    ctx = context(request)
    actor = ctx.credentials.actor(ctx.signer.client_id(bearer.credentials.strip()))
    if actor is None:
        raise unauthorized("the access token names a credential that no longer exists")
    return actor


async def _context(request: Request) -> BridgeContext:
    return context(request)


# Both are async although neither awaits: FastAPI runs a plain ``def`` dependency in a
# worker thread, two thread hops per request that cost more than most routes' work.
CurrentActor = Annotated[Actor, Depends(current_actor)]
Ctx = Annotated[BridgeContext, Depends(_context)]


class AccessTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clientId: str = Field(min_length=1, description="The client id of a user or machine.")
    clientSecret: str = Field(min_length=1, description="Its secret.")


class AccessTokenResponse(BaseModel):
    ok: bool = Field(description="Always true on success.")
    accessToken: str = Field(description="Send as `Authorization: Bearer <accessToken>`.")
    expiresIn: int = Field(description="Seconds until the token expires.")
    tokenType: Literal["Bearer"] = Field(description="Always `Bearer`.")


class ActorView(BaseModel):
    clientId: str = Field(description="The credential's client id.")
    name: str = Field(description="What runs record as createdBy: an email or a machine's name.")
    kind: Literal["user", "machine"]
    isMachine: bool
    role: str | None = Field(description="Admin or Member (users only).")
    teams: list[str]
    privileged: bool = Field(description="Admins and machines: may run, view and steer anything.")


class WhoAmIResponse(BaseModel):
    ok: bool
    actor: ActorView


router = APIRouter(tags=["auth"])


@router.post(
    "/v1/auth/access_token",
    response_model=AccessTokenResponse,
    summary="Exchange client credentials for an access token",
    responses={
        401: {"description": "Unknown client id or wrong secret."},
        429: {
            "description": "Too many failed attempts for this client id or from this "
            "address in the window; `Retry-After` says in how many seconds to retry."
        },
    },
)
async def access_token(body: AccessTokenRequest, request: Request, ctx: Ctx) -> Response:
    # The TCP peer: behind a reverse proxy, the proxy (X-Forwarded-For is not trusted).
    address = request.client.host if request.client else "unknown"
    actor = await ctx.token_attempts.authenticate(body.clientId, body.clientSecret, address)
    if actor is None:
        raise unauthorized("clientId or clientSecret is wrong")
    return json_response(
        {
            "ok": True,
            "accessToken": ctx.signer.issue(actor),
            "expiresIn": ctx.signer.ttl_seconds,
            "tokenType": "Bearer",
        }
    )


@router.get(
    "/v1/auth/me",
    response_model=WhoAmIResponse,
    summary="Who the token is for",
    description="The caller as the bridge sees it (role, teams), so that a client (the web "
    "UI) offers only the actions the caller may perform; the API checks them regardless.",
    responses={401: {"description": "No valid access token."}},
)
async def who_am_i(actor: CurrentActor) -> Response:
    view = ActorView(
        clientId=actor.client_id, name=actor.name, kind=actor.kind, isMachine=actor.is_machine,
        role=actor.role, teams=list(actor.teams), privileged=actor.is_privileged,
    )  # fmt: skip
    return json_response({"ok": True, "actor": view.model_dump()})
