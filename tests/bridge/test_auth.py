"""POST /v1/auth/access_token and the Bearer check: no, expired, forged tokens are 401."""

from __future__ import annotations

import time

import jwt

from switchyard.bridge.tokens import TokenSigner
from tests.bridge.support import SECRET, TOKEN_SECRET, Api


async def test_access_token_for_client_credentials(api: Api) -> None:
    response = await api.call(
        "POST", "/v1/auth/access_token", None, json={"clientId": "machine", "clientSecret": SECRET}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["tokenType"] == "Bearer"
    assert body["expiresIn"] == 3600
    listed = await api.client.get(
        "/v1/workflows", headers={"Authorization": f"Bearer {body['accessToken']}"}
    )
    assert listed.status_code == 200


async def test_wrong_secret_or_unknown_client_is_401(api: Api) -> None:
    for credentials in ({"clientId": "machine", "clientSecret": "nope"},
                        {"clientId": "nobody", "clientSecret": SECRET}):  # fmt: skip
        response = await api.call("POST", "/v1/auth/access_token", None, json=credentials)
        assert response.status_code == 401
        assert response.json() == {
            "ok": False, "error": "unauthorized", "message": "clientId or clientSecret is wrong",
        }  # fmt: skip


async def test_access_token_body_is_validated(api: Api) -> None:
    response = await api.call("POST", "/v1/auth/access_token", None, json={"clientId": "x"})
    assert response.status_code == 422
    assert "body.clientSecret: is required" in response.json()["message"]


async def test_no_token_is_401(api: Api) -> None:
    response = await api.call("GET", "/v1/workflows/runs", None)
    assert response.status_code == 401
    assert response.json()["ok"] is False
    assert "Authorization header is required" in response.json()["message"]
    response = await api.call(
        "GET", "/v1/workflows/runs", None, headers={"Authorization": "Basic x"}
    )
    assert response.status_code == 401


async def test_expired_token_is_401(api: Api) -> None:
    actor = api.ctx.credentials.actor("admin")
    assert actor is not None
    old = TokenSigner(TOKEN_SECRET, 60).issue(actor, now=time.time() - 3600)
    response = await api.client.get("/v1/workflows", headers={"Authorization": f"Bearer {old}"})
    assert response.status_code == 401
    assert "expired" in response.json()["message"]


async def test_forged_token_is_401(api: Api) -> None:
    forged = jwt.encode(
        {"sub": "admin", "iss": "switchyard", "exp": int(time.time()) + 60},
        "another-secret-of-sufficient-length",
        algorithm="HS256",
    )
    for token in (forged, "not-a-jwt"):
        response = await api.client.get(
            "/v1/workflows", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"


async def test_who_am_i_names_the_caller_and_what_it_may_do(api: Api) -> None:
    seen = {}
    for who in ("admin", "member", "machine"):
        response = await api.call("GET", "/v1/auth/me", who)
        assert response.status_code == 200, response.text
        seen[who] = response.json()["actor"]
    assert seen["admin"] == {"clientId": "admin", "name": "admin@example.com", "kind": "user",
                             "isMachine": False, "role": "Admin", "teams": [],
                             "privileged": True}  # fmt: skip
    assert seen["member"]["teams"] == ["dev"]
    assert (seen["member"]["role"], seen["member"]["privileged"]) == ("Member", False)
    assert (seen["machine"]["name"], seen["machine"]["isMachine"]) == ("ci-bot", True)
    assert seen["machine"]["privileged"] is True
    assert (await api.call("GET", "/v1/auth/me", None)).status_code == 401
