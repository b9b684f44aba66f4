"""Every error has the {ok: false, error, message} body; bad input is never a 500."""

from __future__ import annotations

from tests.bridge.support import Api


async def test_unknown_route_is_404_with_error_body(api: Api) -> None:
    response = await api.call("GET", "/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {
        "ok": False, "error": "not_found", "message": "no route GET /v1/nothing-here",
    }  # fmt: skip


async def test_wrong_method_is_405_with_error_body(api: Api) -> None:
    response = await api.call("DELETE", "/v1/auth/access_token")
    assert response.status_code == 405
    assert response.json()["ok"] is False


async def test_malformed_json_is_422(api: Api) -> None:
    response = await api.call(
        "POST", "/v1/workflows", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert "JSON" in response.json()["message"]


async def test_openapi_documents_every_route_and_field(api: Api) -> None:
    response = await api.call("GET", "/openapi.json", None)
    assert response.status_code == 200
    spec = response.json()
    paths = spec["paths"]
    for path in (
        "/v1/auth/access_token", "/v1/workflows", "/v1/workflows/{workflow_id}",
        "/v1/workflows/{workflow_id}/runs", "/v1/workflows/runs", "/v1/workflows/runs/{run_id}",
        "/v1/workflows/nodes/runs/{node_run_id}", "/v1/workflows/runs/{run_id}/nodes/{node_run_id}",
        "/v1/workflows/nodes/runs/{node_run_id}/logs", "/v1/workflows/nodes/runs",
        "/v1/workflows/runs/claim-pending", "/v1/org/{org_id}/workflows/runs/claim-pending",
        "/v1/workflows/runs/ack", "/v1/org/{org_id}/workflows/runs/ack",
        "/v1/workflows/runs/{run_id}/cancel",
    ):  # fmt: skip
        assert path in paths, path
    patch = spec["components"]["schemas"]["NodeRunPatch"]["properties"]
    assert all(field.get("description") for field in patch.values())
    docs = await api.call("GET", "/docs", None)
    assert docs.status_code == 200
