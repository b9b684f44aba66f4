"""Who may do what (SPEC §6): every endpoint by every kind of caller → one expected status.

Callers: no token, a malformed one, an expired one, one signed with another key (and
an unsigned ``alg: none`` one), a Member, a Member of the team the workflows permit,
an Admin, machine credentials. A test fails when the OpenAPI document has an
endpoint this table lacks. Then: runs of ``allowAnyoneToViewRuns: false`` workflows
never leak through list, get, logs, lookup or claim.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.bridge.sse import messages, serving, take_until
from tests.bridge.support import SECRET, integration_workflow, kafka_workflow, new_installation
from tests.conftest import Services
from tests.helpers import until
from tests.security.stack import (
    PERMITTED_TEAM,
    Stack,
    running_stack,
    stack_settings,
    write_auth_file,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

BAD = ("none", "malformed", "expired", "foreign", "unsigned")
GOOD = ("member", "teammate", "admin", "machine")
CALLERS = BAD + GOOD
TEAM = {"teams": [PERMITTED_TEAM]}


@dataclass
class World:
    """What the requests act on; ``fresh_*`` make a new one for a request that changes it."""

    stack: Stack
    private_wf: str  # allowAnyoneToViewRuns false, runnable by the team
    open_wf: str  # allowAnyoneToViewRuns true, runnable by the team
    private_run: str  # the admin's run of private_wf
    node_run: str  # its waiting KAFKA node run
    external_id: str
    live: httpx.AsyncClient  # the same app on a port: SSE streams can't go through ASGI

    async def fresh_workflow(self) -> str:
        identifier = f"mx-{uuid.uuid4().hex[:10]}"
        await self.stack.api.define(kafka_workflow(identifier, permissions=TEAM, anyone=True))
        return identifier

    async def fresh_open_run(self) -> str:
        return str((await self.stack.api.trigger(self.open_wf, {"name": "x1"}))["identifier"])

    async def fresh_finished_open_run(self) -> str:
        """An Admin's COMPLETED run of open_wf (a re-run needs a finished one)."""
        api = self.stack.api
        run = await api.trigger(self.open_wf, {"name": "x1"})
        work = next(nr for nr in run["nodeRuns"] if nr["node"]["identifier"] == "work")
        done = {"status": "COMPLETED", "result": "SUCCESS"}
        patched = await api.call("PATCH", f"/v1/workflows/nodes/runs/{work['identifier']}",
                                 json=done)  # fmt: skip
        assert patched.status_code == 200, patched.text
        await until(lambda: api.run(run["identifier"]), lambda r: r["status"] == "COMPLETED")
        return str(run["identifier"])

    async def fresh_pending_claim(self) -> str:
        api = self.stack.api
        identifier = f"mx-int-{uuid.uuid4().hex[:8]}"
        await api.define(integration_workflow(identifier, new_installation()))
        run = await api.trigger(identifier, {"name": "x1"})
        return str(
            next(nr["identifier"] for nr in run["nodeRuns"] if nr["node"]["identifier"] == "act")
        )


Request = tuple[str, str, dict[str, Any]]  # method, path, httpx keyword arguments
Make = Callable[[World], Awaitable[Request]]


def _fixed(method: str, path: str, **kwargs: Any) -> Make:
    async def make(world: World) -> Request:
        return method, path.format(w=world), kwargs

    return make


async def _put(world: World) -> Request:
    wf = await world.fresh_workflow()
    return "PUT", f"/v1/workflows/{wf}", {"json": kafka_workflow(wf, permissions=TEAM)}


async def _delete(world: World) -> Request:
    return "DELETE", f"/v1/workflows/{await world.fresh_workflow()}", {}


async def _create(world: World) -> Request:
    identifier = f"mx-{uuid.uuid4().hex[:10]}"
    return "POST", "/v1/workflows", {"json": kafka_workflow(identifier)}


async def _cancel(world: World) -> Request:
    return "POST", f"/v1/workflows/runs/{await world.fresh_open_run()}/cancel", {}


async def _rerun(world: World) -> Request:
    return "POST", f"/v1/workflows/runs/{await world.fresh_finished_open_run()}/rerun", {"json": {}}


def _ack(prefix: str) -> Make:
    async def make(world: World) -> Request:
        node_run = await world.fresh_pending_claim()
        return "PATCH", f"{prefix}/workflows/runs/ack", {"json": {"nodeRunIdentifier": node_run}}

    return make


async def _new_integration(world: World) -> Request:
    body = {"installationId": f"mx-ocean-{uuid.uuid4().hex[:8]}", "config": {}}
    return "POST", "/v1/integration", {"json": body}


def _integration(method: str, suffix: str = "", **kwargs: Any) -> Make:
    """A request on an integration that exists (registered by an Admin first)."""

    async def make(world: World) -> Request:
        identifier = f"mx-ocean-{uuid.uuid4().hex[:8]}"
        created = await world.stack.api.call(
            "POST", "/v1/integration", json={"installationId": identifier}
        )
        assert created.status_code == 201, created.text
        return method, f"/v1/integration/{identifier}{suffix}", kwargs

    return make


def _blueprint(method: str, suffix: str = "", *, entity: bool = False, **kwargs: Any) -> Make:
    """A request on a fresh blueprint (an Admin's), with entity ``e1`` when ``entity``."""

    async def make(world: World) -> Request:
        identifier = f"mx-bp-{uuid.uuid4().hex[:8]}"
        api = world.stack.api
        created = await api.call("POST", "/v1/blueprints", json={"identifier": identifier})
        assert created.status_code == 201, created.text
        if entity:
            base = f"/v1/blueprints/{identifier}/entities"
            made = await api.call("POST", base, json={"identifier": "e1"})
            assert made.status_code == 201, made.text
        return method, f"/v1/blueprints/{identifier}{suffix}", kwargs

    return make


def approval_workflow(identifier: str, responders: dict[str, Any]) -> dict[str, Any]:
    """trigger → ask (an INPUT node of ``responders``), runs private to their creator."""
    ask = {"type": "INPUT", "userInputs": {"buttons": [{"identifier": "ok", "label": "OK"}]},
           "outlets": [{"identifier": "ok"}], "responders": responders}  # fmt: skip
    definition = kafka_workflow(identifier, permissions=TEAM, anyone=False)
    definition["nodes"] = [definition["nodes"][0], {"identifier": "ask", "config": ask}]
    definition["connections"] = [{"sourceIdentifier": "trigger", "targetIdentifier": "ask"}]
    return definition


async def _respond(world: World) -> Request:
    """An answer to a fresh approval (an Admin's run) whose responders are the team."""
    api = world.stack.api
    identifier = f"mx-ask-{uuid.uuid4().hex[:8]}"
    await api.define(approval_workflow(identifier, {"teams": [PERMITTED_TEAM]}))
    run = await api.trigger(identifier, {"name": "x1"})
    ask = next(nr["identifier"] for nr in run["nodeRuns"] if nr["node"]["identifier"] == "ask")
    return "POST", f"/v1/workflows/nodes/runs/{ask}/respond", {"json": {"buttonIdentifier": "ok"}}


async def _new_blueprint(world: World) -> Request:
    return "POST", "/v1/blueprints", {"json": {"identifier": f"mx-bp-{uuid.uuid4().hex[:8]}"}}


PROGRESS = {"status": "IN_PROGRESS", "logs": [{"logLevel": "INFO", "log": "matrix"}]}
CLAIM = {"installationId": "inst-matrix-nobody"}

# endpoint: (request, expected status of: bad tokens, member, teammate, admin, machine)
TABLE: dict[tuple[str, str], tuple[Make, tuple[int, int, int, int, int]]] = {
    ("POST", "/v1/auth/access_token"): (
        _fixed(
            "POST", "/v1/auth/access_token", json={"clientId": "member", "clientSecret": SECRET}
        ),
        (200, 200, 200, 200, 200),  # no token needed: the header is ignored
    ),
    ("GET", "/v1/auth/me"): (_fixed("GET", "/v1/auth/me"), (401, 200, 200, 200, 200)),
    ("GET", "/v1/workflows"): (_fixed("GET", "/v1/workflows"), (401, 200, 200, 200, 200)),
    ("POST", "/v1/workflows"): (_create, (401, 403, 403, 201, 201)),
    ("GET", "/v1/workflows/{workflow_id}"): (
        _fixed("GET", "/v1/workflows/{w.private_wf}"),
        (401, 404, 200, 200, 200),  # a Member sees the workflows they may run
    ),
    # The web UI's graphs: a version's layout is visible as the workflow is, a run's
    # as the run is.
    ("GET", "/v1/workflows/{workflow_id}/layout"): (
        _fixed("GET", "/v1/workflows/{w.private_wf}/layout?version=1"),
        (401, 404, 200, 200, 200),
    ),
    ("GET", "/v1/workflows/runs/{run_id}/layout"): (
        _fixed("GET", "/v1/workflows/runs/{w.private_run}/layout"),
        (401, 404, 404, 200, 200),
    ),
    ("PUT", "/v1/workflows/{workflow_id}"): (_put, (401, 403, 403, 200, 200)),
    ("DELETE", "/v1/workflows/{workflow_id}"): (_delete, (401, 403, 403, 200, 200)),
    ("POST", "/v1/workflows/{workflow_id}/runs"): (
        _fixed("POST", "/v1/workflows/{w.private_wf}/runs", json={"inputs": {"name": "mx"}}),
        (401, 403, 201, 201, 201),
    ),
    ("GET", "/v1/workflows/runs"): (_fixed("GET", "/v1/workflows/runs"), (401, 200, 200, 200, 200)),
    ("GET", "/v1/workflows/runs/{run_id}"): (
        _fixed("GET", "/v1/workflows/runs/{w.private_run}"),
        (401, 404, 404, 200, 200),  # not visible reads as missing
    ),
    # Live streams: a run's as its GET; the list stream for anyone, of visible runs.
    ("GET", "/v1/workflows/runs/{run_id}/stream"): (
        _fixed("GET", "/v1/workflows/runs/{w.private_run}/stream"),
        (401, 404, 404, 200, 200),
    ),
    ("GET", "/v1/workflows/runs/stream"): (
        _fixed("GET", "/v1/workflows/runs/stream"),
        (401, 200, 200, 200, 200),
    ),
    ("POST", "/v1/workflows/runs/{run_id}/cancel"): (_cancel, (401, 403, 403, 200, 200)),
    # Members see the open run but did not start it: re-run is as cancel.
    ("POST", "/v1/workflows/runs/{run_id}/rerun"): (_rerun, (401, 403, 403, 201, 201)),
    # Only responders answer; the Member who is none may not even see the run (404);
    # Admins and machines see it but are no responders unless named (403).
    ("POST", "/v1/workflows/nodes/runs/{node_run_id}/respond"): (
        _respond,
        (401, 404, 200, 403, 403),
    ),
    ("PATCH", "/v1/workflows/nodes/runs/{node_run_id}"): (
        _fixed("PATCH", "/v1/workflows/nodes/runs/{w.node_run}", json=PROGRESS),
        (401, 403, 403, 200, 200),
    ),
    ("PATCH", "/v1/workflows/runs/{run_id}/nodes/{node_run_id}"): (
        _fixed("PATCH", "/v1/workflows/runs/{w.private_run}/nodes/{w.node_run}", json=PROGRESS),
        (401, 403, 403, 200, 200),
    ),
    ("POST", "/v1/workflows/nodes/runs/{node_run_id}/logs"): (
        _fixed(
            "POST",
            "/v1/workflows/nodes/runs/{w.node_run}/logs",
            json={"logs": [{"level": "INFO", "message": "matrix"}]},
        ),
        (401, 403, 403, 200, 200),
    ),
    ("GET", "/v1/workflows/nodes/runs"): (
        _fixed("GET", "/v1/workflows/nodes/runs?external_run_id={w.external_id}"),
        (401, 403, 403, 200, 200),
    ),
    ("POST", "/v1/workflows/runs/claim-pending"): (
        _fixed("POST", "/v1/workflows/runs/claim-pending", json=CLAIM),
        (401, 403, 403, 200, 200),
    ),
    ("POST", "/v1/org/{org_id}/workflows/runs/claim-pending"): (
        _fixed("POST", "/v1/org/acme/workflows/runs/claim-pending", json=CLAIM),
        (401, 403, 403, 200, 200),
    ),
    ("PATCH", "/v1/workflows/runs/ack"): (_ack("/v1"), (401, 403, 403, 200, 200)),
    ("PATCH", "/v1/org/{org_id}/workflows/runs/ack"): (
        _ack("/v1/org/acme"),
        (401, 403, 403, 200, 200),
    ),
    # What an Ocean integration calls around the workflow endpoints.
    ("GET", "/v1/integration/provision-enabled"): (
        _fixed("GET", "/v1/integration/provision-enabled"),
        (401, 403, 403, 200, 200),
    ),
    ("POST", "/v1/integration"): (_new_integration, (401, 403, 403, 201, 201)),
    ("GET", "/v1/integration/{identifier}"): (_integration("GET"), (401, 403, 403, 200, 200)),
    ("PATCH", "/v1/integration/{identifier}"): (
        _integration("PATCH", json={"version": "0.2.0"}),
        (401, 403, 403, 200, 200),
    ),
    ("PATCH", "/v1/integration/{identifier}/config"): (
        _integration("PATCH", "/config", json={"config": {"resources": []}}),
        (401, 403, 403, 200, 200),
    ),
    ("POST", "/v1/integration/{identifier}/logs"): (
        _integration("POST", "/logs", json={"logs": [{"message": "matrix"}]}),
        (401, 403, 403, 200, 200),
    ),
    ("PATCH", "/v1/integration/{identifier}/resync-state"): (
        _integration("PATCH", "/resync-state", json={"status": "running"}),
        (401, 403, 403, 200, 200),
    ),
    ("GET", "/v1/integration/{identifier}/resync-request"): (
        _integration("GET", "/resync-request"),
        (401, 403, 403, 200, 200),
    ),
    ("POST", "/v1/integration/{identifier}/metrics/{rest}"): (
        _integration("POST", "/metrics/heartbeat", json={"eventId": "e"}),
        (401, 403, 403, 200, 200),
    ),
    ("PUT", "/v1/integration/{identifier}/metrics/{rest}"): (
        _integration("PUT", "/metrics/syncMetrics/resync/e/kind/k", json={}),
        (401, 403, 403, 200, 200),
    ),
    ("GET", "/v1/organization"): (_fixed("GET", "/v1/organization"), (401, 403, 403, 200, 200)),
    ("PATCH", "/v1/organization"): (
        _fixed("PATCH", "/v1/organization", json={"settings": {"matrix": True}}),
        (401, 403, 403, 200, 200),
    ),
    ("POST", "/v1/actions/runs/claim-pending"): (
        _fixed("POST", "/v1/actions/runs/claim-pending", json=CLAIM),
        (401, 403, 403, 200, 200),
    ),
    ("GET", "/v1/actions/runs"): (
        _fixed("GET", "/v1/actions/runs?version=v2&external_run_id=x"),
        (401, 403, 403, 200, 200),
    ),
    ("PATCH", "/v1/actions/runs/ack"): (
        _fixed("PATCH", "/v1/actions/runs/ack", json={"runId": "r_matrix"}),
        (401, 403, 403, 404, 404),  # no action runs exist
    ),
    # Entities: anyone signed in reads; Admins and machines write.
    ("POST", "/v1/blueprints"): (_new_blueprint, (401, 403, 403, 201, 201)),
    ("GET", "/v1/blueprints"): (_fixed("GET", "/v1/blueprints"), (401, 200, 200, 200, 200)),
    ("GET", "/v1/blueprints/{blueprint_id}"): (_blueprint("GET"), (401, 200, 200, 200, 200)),
    ("POST", "/v1/blueprints/{blueprint_id}/entities"): (
        _blueprint("POST", "/entities", json={"identifier": "e2"}),
        (401, 403, 403, 201, 201),
    ),
    ("GET", "/v1/blueprints/{blueprint_id}/entities"): (
        _blueprint("GET", "/entities", entity=True),
        (401, 200, 200, 200, 200),
    ),
    ("GET", "/v1/blueprints/{blueprint_id}/entities/{entity_id}"): (
        _blueprint("GET", "/entities/e1", entity=True),
        (401, 200, 200, 200, 200),
    ),
    ("DELETE", "/v1/blueprints/{blueprint_id}/entities/{entity_id}"): (
        _blueprint("DELETE", "/entities/e1", entity=True),
        (401, 403, 403, 200, 200),
    ),
}


def _expected(endpoint: tuple[str, str], caller: str) -> int:
    bad, *good = TABLE[endpoint][1]
    return bad if caller in BAD else good[GOOD.index(caller)]


CASES = [
    pytest.param(
        endpoint, caller, _expected(endpoint, caller), id=f"{endpoint[0]} {endpoint[1]} {caller}"
    )
    for endpoint in TABLE
    for caller in CALLERS
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(
    services: Services, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    auth = write_auth_file(tmp_path_factory.mktemp("matrix"))
    settings = stack_settings(services, f"mx{uuid.uuid4().hex[:8]}", auth)
    async with (
        running_stack(settings) as stack,
        serving(stack.api.app) as server,
        httpx.AsyncClient(base_url=server.url) as live,
    ):
        api = stack.api
        private_wf, open_wf = f"mx-priv-{uuid.uuid4().hex[:8]}", f"mx-open-{uuid.uuid4().hex[:8]}"
        await api.define(kafka_workflow(private_wf, permissions=TEAM, anyone=False))
        await api.define(kafka_workflow(open_wf, permissions=TEAM, anyone=True))
        run = await api.trigger(private_wf, {"name": "admin-run"})
        node_run = next(nr for nr in run["nodeRuns"] if nr["node"]["identifier"] == "work")
        external = f"ext-{uuid.uuid4().hex[:8]}"
        patched = await api.call(
            "PATCH", f"/v1/workflows/nodes/runs/{node_run['identifier']}",
            json={"externalRunId": external},
        )  # fmt: skip
        assert patched.status_code == 200, patched.text
        yield World(
            stack, private_wf, open_wf, run["identifier"], node_run["identifier"], external, live
        )


async def test_the_table_covers_every_endpoint_of_the_openapi_document(world: World) -> None:
    schema = world.stack.api.app.openapi()
    documented = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
    }
    assert documented == set(TABLE)


async def _headers(world: World, caller: str) -> dict[str, str]:
    if caller in GOOD:
        return {"Authorization": f"Bearer {world.stack.api.token(caller)}"}
    header = world.stack.bad_tokens()[caller]
    return {} if header is None else {"Authorization": header}


@pytest.mark.parametrize(("endpoint", "caller", "status"), CASES)
async def test_authorization_matrix(
    world: World, endpoint: tuple[str, str], caller: str, status: int
) -> None:
    method, path, kwargs = await TABLE[endpoint][0](world)
    headers = await _headers(world, caller)
    if endpoint[1].endswith("/stream"):
        response = await _open_stream(world, path, headers)
    else:
        response = await world.stack.api.client.request(method, path, headers=headers, **kwargs)
    assert response.status_code == status, f"{method} {path} as {caller}: {response.text}"
    if status >= 400:
        body = response.json()
        assert body["ok"] is False
        assert set(body) == {"ok", "error", "message"}
        assert body["message"]
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


async def _open_stream(world: World, path: str, headers: dict[str, str]) -> httpx.Response:
    """A stream's status (and an error's body) without waiting for an end that may
    never come: the list stream never ends."""
    async with world.live.stream("GET", path, headers=headers) as response:
        if response.status_code >= 400:
            await response.aread()
        else:
            assert response.headers["content-type"].startswith("text/event-stream")
        return response


STUCK = {"member": 403, "teammate": 403, "admin": 200, "machine": 200}


@pytest.mark.parametrize("caller", CALLERS)
async def test_stuck_runs_are_for_admins_and_machines(world: World, caller: str) -> None:
    response = await world.stack.api.client.get(
        "/v1/workflows/runs?stuck=true", headers=await _headers(world, caller)
    )
    assert response.status_code == STUCK.get(caller, 401), response.text
    if response.status_code == 200:
        # Redis is shared with other sessions' tests: emptiness is test_stuck.py's matter.
        assert isinstance(response.json()["workflowRuns"], list)


async def _visible_ids(world: World, caller: str, query: str = "") -> list[str]:
    response = await world.stack.api.call("GET", f"/v1/workflows/runs{query}", caller)
    assert response.status_code == 200, response.text
    return [run["identifier"] for run in response.json()["workflowRuns"]]


async def test_private_runs_never_leak_to_members(world: World) -> None:
    api = world.stack.api
    own = (await api.trigger(world.private_wf, {"name": "mine"}, who="teammate"))["identifier"]
    hidden = world.private_run
    queries = [
        "",
        "?limit=1000",
        f"?workflowRunIdentifiers={hidden}",
        f"?workflowRunIdentifiers={hidden},{own}",
        f"?workflowIdentifiers={world.private_wf}",
        "?createdBy=admin@example.com",
        "?statuses=IN_PROGRESS",
        "?workflowVersions=1",
    ]
    bodies: list[str] = []
    for caller in ("member", "teammate"):
        for query in queries:
            response = await api.call("GET", f"/v1/workflows/runs{query}", caller)
            assert response.status_code == 200, response.text
            bodies.append(response.text)
            ids = [run["identifier"] for run in response.json()["workflowRuns"]]
            assert hidden not in ids, (caller, query)
            assert own not in ids or caller == "teammate"
    # The creator sees their own run of the private workflow, filtered or not.
    assert own in await _visible_ids(world, "teammate", f"?workflowIdentifiers={world.private_wf}")
    assert own not in await _visible_ids(world, "member")
    assert hidden in await _visible_ids(world, "admin", f"?workflowRunIdentifiers={hidden}")

    # get: a run that is not visible reads exactly as one that does not exist.
    missing = "wfr_" + "0" * 16
    for caller in ("member", "teammate"):
        seen = await api.call("GET", f"/v1/workflows/runs/{hidden}", caller)
        absent = await api.call("GET", f"/v1/workflows/runs/{missing}", caller)
        assert (seen.status_code, absent.status_code) == (404, 404)
        assert seen.json()["message"].replace(hidden, missing) == absent.json()["message"]
        bodies.append(seen.text)
        # logs, lookup and claim: Members may not read node runs at all.
        for method, path, kwargs in (
            ("POST", f"/v1/workflows/nodes/runs/{world.node_run}/logs",
             {"json": {"logs": [{"level": "INFO", "message": "peek"}]}}),
            ("GET", f"/v1/workflows/nodes/runs?external_run_id={world.external_id}", {}),
            ("GET", f"/v1/workflows/nodes/runs?external_run_id={world.external_id}"
                    "&include=nodeConfig", {}),
            ("POST", "/v1/workflows/runs/claim-pending", {"json": {"installationId": "x"}}),
            ("PATCH", f"/v1/workflows/runs/{hidden}/nodes/{world.node_run}", {"json": PROGRESS}),
            ("POST", f"/v1/workflows/runs/{hidden}/cancel", {}),
            ("POST", f"/v1/workflows/runs/{hidden}/rerun", {"json": {"force": True}}),
            ("GET", "/v1/workflows/runs?stuck=true", {}),
        ):  # fmt: skip
            response = await api.call(method, path, caller, **kwargs)
            assert response.status_code in (403, 404), (method, path, response.text)
            bodies.append(response.text)
    for body in bodies:
        assert hidden not in body.replace(f"workflow run {hidden} not found", "")
        assert "admin-run" not in body  # the hidden run's inputs
        assert world.external_id not in body


async def test_turning_view_off_hides_earlier_runs_too(world: World) -> None:
    api = world.stack.api
    wf = await world.fresh_workflow()  # allowAnyoneToViewRuns: true
    run_id = (await api.trigger(wf, {"name": "was-open"}))["identifier"]
    assert run_id in await _visible_ids(world, "member", f"?workflowIdentifiers={wf}")
    assert (await api.call("GET", f"/v1/workflows/runs/{run_id}", "member")).status_code == 200
    updated = await api.call(
        "PUT", f"/v1/workflows/{wf}", json=kafka_workflow(wf, permissions=TEAM, anyone=False)
    )
    assert updated.status_code == 200, updated.text
    assert run_id not in await _visible_ids(world, "member", f"?workflowIdentifiers={wf}")
    assert run_id not in await _visible_ids(world, "member")
    assert (await api.call("GET", f"/v1/workflows/runs/{run_id}", "member")).status_code == 404


async def test_a_token_of_a_removed_credential_or_with_a_forged_subject_is_refused(
    world: World,
) -> None:
    from switchyard.bridge.credentials import Actor

    signer = world.stack.api.ctx.signer
    ghost = signer.issue(Actor("ghost", "user", "ghost@example.com", "Admin"))
    response = await world.stack.api.client.get(
        "/v1/workflows", headers={"Authorization": f"Bearer {ghost}"}
    )
    assert response.status_code == 401
    assert "no longer exists" in response.json()["message"]
    for header in ("Basic YWRtaW46c2VjcmV0", "Bearer", "Bearer    ", "bearer x.y.z", "Token abc"):
        response = await world.stack.api.client.get(
            "/v1/workflows", headers={"Authorization": header}
        )
        assert response.status_code == 401, header
        assert response.json()["ok"] is False


async def test_responders_see_the_runs_of_the_versions_they_answer_and_no_other(
    world: World,
) -> None:
    """A responder of version 1's INPUT node sees version 1's runs of a private
    workflow (get and list, whatever the filters), not version 2's where someone else
    answers; a Member who answers nothing sees neither."""
    api = world.stack.api
    identifier = f"mx-ask-{uuid.uuid4().hex[:8]}"
    await api.define(approval_workflow(identifier, {"teams": [PERMITTED_TEAM]}))
    answered = (await api.trigger(identifier, {"name": "v1"}))["identifier"]
    updated = await api.call(
        "PUT", f"/v1/workflows/{identifier}",
        json=approval_workflow(identifier, {"users": ["nobody@example.com"]}),
    )  # fmt: skip
    assert updated.status_code == 200, updated.text
    other = (await api.trigger(identifier, {"name": "v2"}))["identifier"]
    queries = ["", f"?workflowIdentifiers={identifier}", "?workflowVersions=1",
               "?workflowVersions=2", f"?workflowRunIdentifiers={answered},{other}",
               f"?workflowIdentifiers={identifier}&workflowVersions=1",
               "?statuses=IN_PROGRESS&limit=1000"]  # fmt: skip
    for query in queries:
        teammate = await _visible_ids(world, "teammate", query)
        assert other not in teammate, query
        if identifier in query or answered in query:  # others' runs can't crowd it out
            assert answered in teammate, query
        member = await _visible_ids(world, "member", query)
        assert answered not in member, query
        assert other not in member, query
    for caller, run_id, status in (("teammate", answered, 200), ("teammate", other, 404),
                                   ("member", answered, 404), ("member", other, 404)):  # fmt: skip
        got = await api.call("GET", f"/v1/workflows/runs/{run_id}", caller)
        assert got.status_code == status, (caller, run_id, got.text)


async def test_private_runs_never_stream_to_members(world: World) -> None:
    """A hidden run's stream is a 404 worded as a missing run's; the list stream, with
    or without filters, sends a Member none of its events (a later visible run's
    events arrive, so the hidden ones had their chance)."""
    api = world.stack.api
    missing = "wfr_" + "0" * 16
    for caller in ("member", "teammate"):
        headers = await _headers(world, caller)
        seen = await _open_stream(world, f"/v1/workflows/runs/{world.private_run}/stream", headers)
        absent = await _open_stream(world, f"/v1/workflows/runs/{missing}/stream", headers)
        assert (seen.status_code, absent.status_code) == (404, 404)
        assert (
            seen.json()["message"].replace(world.private_run, missing) == absent.json()["message"]
        )
    queries = ["", f"?workflowIdentifiers={world.private_wf},{world.open_wf}",
               "?createdBy=admin@example.com", "?statuses=IN_PROGRESS"]  # fmt: skip
    async with contextlib.AsyncExitStack() as streams:
        opened = []
        for caller in ("member", "teammate"):
            for query in queries:
                response = await streams.enter_async_context(
                    world.live.stream(
                        "GET", f"/v1/workflows/runs/stream{query}",
                        headers=await _headers(world, caller),
                    )
                )  # fmt: skip
                assert response.status_code == 200, response.status_code
                opened.append(response)
        # Each run is created (its first events stored) before the next is triggered.
        hidden = (await api.trigger(world.private_wf, {"name": "admin-run"}))["identifier"]
        marker = await world.fresh_open_run()
        for response in opened:
            got = await take_until(messages(response), lambda m: m.json()["runId"] == marker)
            for message in got:
                assert message.data is not None
                assert hidden not in message.data
                assert world.private_run not in message.data
