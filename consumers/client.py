"""An async client of the runs API (httpx): what workers and integrations call.

It fetches an access token with the client credentials and keeps it until shortly
before it expires; a 401 (a token the server no longer accepts) refetches once and
retries. Every error answer becomes :class:`ApiError` carrying the API's ``error``
code and ``message``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from switchyard.schemas import LogEntry, NodeRunResult, NodeRunStatus, RunStatus, WorkflowRun

_REFRESH_MARGIN = 30.0  # seconds before expiry when a token is replaced


class ApiError(Exception):
    """The runs API refused a request: ``status_code``, its ``error`` code, its ``message``."""

    def __init__(self, status_code: int, error: str, message: str) -> None:
        super().__init__(f"{status_code} {error}: {message}")
        self.status_code = status_code
        self.error = error
        self.message = message

    @classmethod
    def of(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            return cls(response.status_code, str(body.get("error", "http_error")),
                       str(body.get("message", response.text)))  # fmt: skip
        return cls(response.status_code, "http_error", response.text[:500])


class ClaimedNodeRun(BaseModel):
    """A node run handed out by claim-pending, with its rendered node config."""

    model_config = ConfigDict(extra="ignore", frozen=True, validate_by_name=True)

    identifier: str
    node: dict[str, Any]
    config: dict[str, Any] = Field(default_factory=dict)
    installation_id: str = Field(alias="installationId")
    workflow_run: dict[str, Any] = Field(alias="workflowRun")
    claimed_until: str | None = Field(default=None, alias="claimedUntil")

    @property
    def node_run_id(self) -> str:
        return self.identifier

    @property
    def run_id(self) -> str:
        return str(self.workflow_run["identifier"])

    @property
    def node_identifier(self) -> str:
        return str(self.node["identifier"])


@dataclass(frozen=True)
class Triggered:
    """A trigger's answer: the run, or only its id when the engine had not created it
    within the bridge's wait (HTTP 202; read it later with ``get_run``)."""

    run_id: str
    run: WorkflowRun | None


def _log_line(entry: LogEntry) -> dict[str, Any]:
    return {"logLevel": entry.log_level, "log": entry.log, "tags": entry.tags}


class RunsClient:
    """The runs API at ``base_url`` as ``client_id``. Use ``async with`` or ``aclose()``.

    ``http`` lets a caller pass its own client (tests pass one bound to the app).
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._owns_http = http is None
        self.http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self._credentials = {"clientId": client_id, "clientSecret": client_secret}
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0

    async def __aenter__(self) -> RunsClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def access_token(self) -> str:
        """A valid token: the cached one, or a new one when it is close to expiry."""
        if self._token is None or self._clock() >= self._expires_at:
            response = await self.http.post("/v1/auth/access_token", json=self._credentials)
            if response.status_code != 200:
                raise ApiError.of(response)
            body = response.json()
            self._token = str(body["accessToken"])
            lifetime = float(body.get("expiresIn", 300))
            self._expires_at = self._clock() + max(lifetime - _REFRESH_MARGIN, lifetime / 2)
        return self._token

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One authenticated call; error answers raise :class:`ApiError`."""
        for attempt in (1, 2):
            token = await self.access_token()
            response = await self.http.request(
                method, path, json=json, params=params,
                headers={**(headers or {}), "Authorization": f"Bearer {token}"},
            )  # fmt: skip
            if response.status_code == 401 and attempt == 1:
                self._token = None  # revoked or expired early: fetch a new one, once
                continue
            if response.status_code >= 400:
                raise ApiError.of(response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def trigger(
        self,
        workflow: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        node_identifier: str | None = None,
        idempotency_key: str | None = None,
    ) -> Triggered:
        body: dict[str, Any] = {"inputs": dict(inputs or {})}
        if node_identifier is not None:
            body["nodeIdentifier"] = node_identifier
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = await self.request(
            "POST", f"/v1/workflows/{workflow}/runs", json=body, headers=headers
        )
        run = response.json()["workflowRun"]
        if response.status_code == 202:
            return Triggered(str(run["identifier"]), None)
        parsed = WorkflowRun.model_validate(run)
        return Triggered(parsed.identifier, parsed)

    async def get_run(self, run_id: str) -> WorkflowRun:
        response = await self.request("GET", f"/v1/workflows/runs/{run_id}")
        return WorkflowRun.model_validate(response.json()["workflowRun"])

    async def list_runs(
        self,
        *,
        workflow_identifiers: Iterable[str] = (),
        run_identifiers: Iterable[str] = (),
        statuses: Iterable[RunStatus] = (),
        results: Iterable[NodeRunResult] = (),
        created_by: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[WorkflowRun]:
        """Runs the caller may view, newest first."""
        params: list[tuple[str, str | int]] = [("limit", limit), ("offset", offset)]
        params += [("workflowIdentifiers", w) for w in workflow_identifiers]
        params += [("workflowRunIdentifiers", r) for r in run_identifiers]
        params += [("statuses", s) for s in statuses]
        params += [("results", r) for r in results]
        if created_by is not None:
            params.append(("createdBy", created_by))
        response = await self.request("GET", "/v1/workflows/runs", params=params)
        return [WorkflowRun.model_validate(r) for r in response.json()["workflowRuns"]]

    async def update_node_run(
        self,
        node_run_id: str,
        *,
        status: NodeRunStatus | None = None,
        result: NodeRunResult | None = None,
        output: dict[str, Any] | None = None,
        logs: Sequence[LogEntry] = (),
        links: list[str] | None = None,
        external_run_id: str | None = None,
    ) -> None:
        """PATCH the node run; COMPLETED needs a result, and a COMPLETED one is frozen (409)."""
        body: dict[str, Any] = {"logs": [_log_line(e) for e in logs]}
        for key, value in (("status", status), ("result", result), ("output", output),
                           ("links", links), ("externalRunId", external_run_id)):  # fmt: skip
            if value is not None:
                body[key] = value
        await self.request("PATCH", f"/v1/workflows/nodes/runs/{node_run_id}", json=body)

    async def add_logs(self, node_run_id: str, logs: Sequence[LogEntry]) -> None:
        body = {"logs": [_log_line(e) for e in logs]}
        await self.request("POST", f"/v1/workflows/nodes/runs/{node_run_id}/logs", json=body)

    async def claim(
        self, installation_id: str, *, limit: int = 10, visibility_timeout_ms: int = 60_000
    ) -> list[ClaimedNodeRun]:
        """Pending node runs of ``installation_id``, hidden from other claims for the timeout."""
        body = {"installationId": installation_id, "limit": limit,
                "visibilityTimeoutMs": visibility_timeout_ms}  # fmt: skip
        response = await self.request("POST", "/v1/workflows/runs/claim-pending", json=body)
        return [ClaimedNodeRun.model_validate(item) for item in response.json()["nodeRuns"]]

    async def ack(self, node_run_id: str) -> bool:
        """True when this caller now owns the node run; False when it was acked already (409)."""
        try:
            await self.request(
                "PATCH", "/v1/workflows/runs/ack", json={"nodeRunIdentifier": node_run_id}
            )
        except ApiError as error:
            if error.status_code == 409:
                return False
            raise
        return True

    async def rerun(
        self,
        run_id: str,
        *,
        inputs: Mapping[str, Any] | None = None,
        from_node: str | None = None,
        version: Literal["pinned", "latest"] = "pinned",
        force: bool = False,
    ) -> Triggered:
        """Re-run a finished run (``force``: one in progress, cancelled first), whole or
        from ``from_node`` (a partial re-run); the new run, as :meth:`trigger` gives it."""
        body: dict[str, Any] = {"version": version, "force": force}
        if inputs is not None:
            body["inputs"] = dict(inputs)
        if from_node is not None:
            body["fromNode"] = from_node
        response = await self.request("POST", f"/v1/workflows/runs/{run_id}/rerun", json=body)
        run = response.json()["workflowRun"]
        if response.status_code == 202:
            return Triggered(str(run["identifier"]), None)
        parsed = WorkflowRun.model_validate(run)
        return Triggered(parsed.identifier, parsed)

    async def cancel(self, run_id: str, *, force: bool = False) -> None:
        """Cancel a run (graceful unless ``force``); 409 when it has completed already."""
        params = {"force": "true"} if force else None
        await self.request("POST", f"/v1/workflows/runs/{run_id}/cancel", params=params)
