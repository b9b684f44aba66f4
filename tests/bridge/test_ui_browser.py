"""The web UI in a real browser: Playwright driving Debian's chromium against the
bridge served by uvicorn on a free port, with the engine in this process.

A person's path through it: sign in, trigger a run from its form (a bad input is
refused at its field), watch a node turn from running to completed while a worker
completes it, read its logs (level filter) and output, find the run by filter in a
list that updates live, re-run it, cancel a waiting run. Screenshots of the list and
of the run page go to ``docs/``; the time to first paint of a run page of 100 node
runs and the stream's delivery latency (event ``at`` → the page receiving it) are
printed, not asserted: they depend on the machine.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect

from switchyard.bridge.app import create_app
from switchyard.engine.service import EngineService
from switchyard.schemas.settings import Settings
from tests.bridge.support import SECRET, Api, node_run
from tests.conftest import REPO
from tests.helpers import until

CHROMIUM = shutil.which("chromium")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="Debian's chromium is not installed (scripts/bootstrap installs it with "
        "apt-get install chromium; Playwright's own browser download is not used)",
    ),
]

DOCS = REPO / "docs"


def form_workflow(identifier: str) -> dict[str, Any]:
    """A form of every input type → where (CONDITION on env) → work (production) or
    preview (otherwise), KAFKA nodes a worker completes."""
    inputs = {
        "properties": {
            "name": {"type": "string", "title": "Service name", "minLength": 2,
                     "description": "At least two characters."},
            "env": {"type": "string", "enum": ["staging", "production"], "default": "staging"},
            "replicas": {"type": "number", "minimum": 1, "maximum": 5, "default": 2},
            "dryRun": {"type": "boolean", "default": False},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name"],
        "order": ["name", "env", "replicas", "dryRun", "tags"],
    }  # fmt: skip
    env = ".outputs.trigger.env"
    outlets = [
        {"identifier": "prod", "title": "production", "expression": f'{env} == "production"'},
        {"identifier": "stage", "title": "staging", "expression": f'{env} != "production"'},
    ]
    kafka = {"type": "KAFKA", "payload": {"name": "{{ .outputs.trigger.name }}"}}
    return {
        "identifier": identifier,
        "title": "Deploy a service",
        "nodes": [
            {"identifier": "trigger", "title": "Deploy",
             "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": inputs}},
            {"identifier": "where", "title": "Where to?",
             "config": {"type": "CONDITION", "outlets": outlets}},
            {"identifier": "work", "title": "Roll out", "config": kafka},
            {"identifier": "preview", "title": "Preview deploy", "config": kafka},
        ],
        "connections": [
            {"sourceIdentifier": "trigger", "targetIdentifier": "where"},
            {"sourceIdentifier": "where", "targetIdentifier": "work",
             "sourceOutletIdentifier": "prod"},
            {"sourceIdentifier": "where", "targetIdentifier": "preview",
             "sourceOutletIdentifier": "stage"},
        ],
    }  # fmt: skip


def chain_workflow(identifier: str, length: int) -> dict[str, Any]:
    """trigger → c1 → … → c<length - 1>: CONDITION nodes the engine completes at once."""
    go = [{"identifier": "go", "title": "Go", "expression": "true"}]
    nodes: list[dict[str, Any]] = [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {}}}
    ]
    nodes += [
        {
            "identifier": f"c{i}",
            "title": f"Step {i}",
            "config": {"type": "CONDITION", "outlets": go},
        }
        for i in range(1, length)
    ]
    connections = [{"sourceIdentifier": "trigger", "targetIdentifier": "c1"}]
    connections += [
        {
            "sourceIdentifier": f"c{i}",
            "targetIdentifier": f"c{i + 1}",
            "sourceOutletIdentifier": "go",
        }
        for i in range(1, length - 1)
    ]
    return {"identifier": identifier, "nodes": nodes, "connections": connections}


@pytest.fixture
async def server(bridge_settings: Settings, engine: EngineService) -> AsyncIterator[Api]:
    """The bridge as a real HTTP server on a port the OS picks; ``Api`` calls it."""
    app = create_app(bridge_settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on",
        timeout_graceful_shutdown=2,  # the list stream never ends by itself
    )  # fmt: skip
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    await until(lambda: _started(server, serving), within=20)
    port = server.servers[0].sockets[0].getsockname()[1]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
        yield Api(client, app)
    server.should_exit = True
    await serving


async def _started(server: uvicorn.Server, serving: asyncio.Task[None]) -> bool:
    if serving.done():
        serving.result()  # raises what stopped it
    return server.started


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield launched
        finally:
            await launched.close()


async def signed_in(browser: Browser, api: Api, who: str = "admin") -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 860})
    await page.goto(str(api.client.base_url) + "/")  # / leads to /ui/
    await page.fill("#client-id", who)
    await page.fill("#client-secret", SECRET)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    token = await page.evaluate("sessionStorage.getItem('switchyard.token')")
    assert token, "the token is kept in sessionStorage"
    assert token not in page.url
    return page


def _run_id_of(url: str) -> str:
    found = re.search(r"#/runs/(wfr_\w+)", url)
    assert found, url
    return found.group(1)


async def patch(api: Api, node_run_id: str, body: dict[str, Any]) -> None:
    response = await api.call("PATCH", f"/v1/workflows/nodes/runs/{node_run_id}", "machine",
                              json=body)  # fmt: skip
    assert response.status_code == 200, response.text


def latencies_ms(events: list[dict[str, Any]], since_ms: float) -> list[float]:
    """The page's receive time minus each event's engine time, for events after ``since_ms``."""
    found = []
    for event in events:
        at = datetime.fromisoformat(str(event["at"]).replace("Z", "+00:00")).timestamp() * 1000
        if at >= since_ms:
            found.append(float(event["receivedAt"]) - at)
    return found


async def test_trigger_watch_a_node_complete_read_logs_find_by_filter_and_rerun(
    server: Api, browser: Browser, wf_id: str
) -> None:
    api = server
    await api.define(form_workflow(wf_id))
    page = await signed_in(browser, api)
    await page.goto(f"{api.client.base_url}/ui/#/workflows/{wf_id}")
    form = page.locator("form[data-trigger='trigger']")
    await form.get_by_label("Service name").fill("x")
    await form.get_by_role("button", name="Run").click()
    # Refused at its field, with the API's message; no run page opened.
    error = page.locator("#trigger-trigger-name-error")
    await expect(error).to_contain_text("at least 2 characters")
    await expect(page.locator("#trigger-trigger-name")).to_have_attribute("aria-invalid", "true")
    assert "#/workflows/" in page.url

    await form.get_by_label("Service name").fill("payments")
    await form.locator("#trigger-trigger-env").select_option(label="production")
    await form.locator("#trigger-trigger-tags").fill("blue\ngreen")
    await form.get_by_role("button", name="Run").click()
    await page.wait_for_url(re.compile(r"#/runs/wfr_"))
    run_id = _run_id_of(page.url)
    run = await until(
        lambda: api.run(run_id),
        lambda r: any(nr["node"]["identifier"] == "work" for nr in r["nodeRuns"]),
    )
    assert run["variables"]["outputs"]["trigger"] == {
        "name": "payments", "env": "production", "replicas": 2, "dryRun": False,
        "tags": ["blue", "green"],
    }  # fmt: skip

    work = page.locator("[data-node='work']")
    await expect(work).to_have_attribute("data-state", "running")
    await expect(page.locator("[data-node='trigger']")).to_have_attribute("data-state", "success")
    # The branch taken is drawn as taken; the other, and its node, greyed as not taken.
    for edge, state in (("0", "taken"), ("1", "taken"), ("2", "skipped")):
        edge_el = page.locator(f"[data-edge='{edge}']")
        await expect(edge_el).to_have_attribute("data-state", state)
    await expect(page.locator("[data-node='preview']")).to_have_attribute("data-state", "skipped")
    await work.click()
    watched_from = time.time() * 1000
    work_run = node_run(run, "work")["identifier"]
    logs = [
        {"logLevel": "DEBUG", "log": "resolved image tag"},
        {"logLevel": "INFO", "log": "Starting deployment", "tags": {"environment": "production"}},
    ]
    await patch(api, work_run, {"status": "IN_PROGRESS", "logs": logs, "externalRunId": "job-7"})
    await expect(page.locator("#logs")).to_contain_text("Starting deployment")
    await expect(page.locator("#logs")).to_contain_text("environment=production")
    await expect(page.locator("#node-panel")).to_contain_text("job-7")
    output = {"deploymentUrl": "https://payments.example.com", "replicas": 2}
    await patch(api, work_run, {"status": "COMPLETED", "result": "SUCCESS", "output": output})
    await expect(work).to_have_attribute("data-state", "success")
    await expect(page.locator("#page")).to_have_attribute("data-run-status", "COMPLETED")
    await expect(page.locator("#node-output")).to_contain_text("deploymentUrl")
    await expect(page.locator("#node-variables")).to_contain_text("payments.example.com")
    await expect(page.locator("#logs")).to_contain_text("resolved image tag")
    await page.select_option("#log-level", "INFO")
    await expect(page.locator("#logs")).not_to_contain_text("resolved image tag")
    await expect(page.locator("#logs")).to_contain_text("Starting deployment")
    DOCS.mkdir(exist_ok=True)
    await page.screenshot(path=str(DOCS / "ui-run.png"), full_page=True)
    events = await page.evaluate("window.__switchyard.events")
    mode = await page.evaluate("window.__switchyard.streamMode()")
    delays = latencies_ms(events, watched_from)
    if delays:
        print(f"\nSSE delivery, engine event → page ({mode}, {len(delays)} events): "
              f"median {statistics.median(delays):.1f} ms, max {max(delays):.1f} ms")  # fmt: skip

    # The list: found by filter, and a new run appears without a reload.
    await page.goto(f"{api.client.base_url}/ui/#/runs")
    await page.fill("#workflow", wf_id)
    await page.select_option("#status", "COMPLETED")
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator(f"tr[data-run='{run_id}']")).to_be_visible()
    await page.select_option("#status", "")
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator(f"tr[data-run='{run_id}']")).to_be_visible()
    fresh = (await api.trigger(wf_id, {"name": "live-one"}))["identifier"]
    await expect(page.locator(f"tr[data-run='{fresh}']")).to_be_visible(timeout=15_000)
    await page.screenshot(path=str(DOCS / "ui-runs.png"), full_page=True)

    # Re-run the completed run from its page: the new run's page opens.
    await page.locator(f"tr[data-run='{run_id}'] a").click()
    await page.wait_for_url(re.compile(f"#/runs/{run_id}"))
    await page.get_by_role("button", name="Re-run", exact=True).click()
    await page.wait_for_url(lambda url: "#/runs/wfr_" in url and run_id not in url)
    rerun = await api.run(_run_id_of(page.url))
    assert rerun["rerunOf"] == {"identifier": run_id, "fromNode": None}
    await expect(page.locator("#run-head, .run-head")).to_contain_text(run_id)


async def test_cancel_a_waiting_run_from_its_page(
    server: Api, browser: Browser, wf_id: str
) -> None:
    api = server
    await api.define(form_workflow(wf_id))
    run_id = (await api.trigger(wf_id, {"name": "to-cancel", "env": "production"}))["identifier"]
    page = await signed_in(browser, api)
    await page.goto(f"{api.client.base_url}/ui/#/runs/{run_id}")
    await expect(page.locator("[data-node='work']")).to_have_attribute("data-state", "running")
    await page.get_by_role("button", name="Cancel", exact=True).click()
    await expect(page.locator("#page")).to_have_attribute("data-run-status", "COMPLETED")
    await expect(page.locator("#run-status")).to_contain_text("CANCELLED")
    await expect(page.locator("[data-node='work']")).to_have_attribute("data-state", "cancelled")
    assert (await api.run(run_id))["result"] == "CANCELLED"


async def test_a_member_is_offered_no_action_on_a_run_it_may_only_view(
    server: Api, browser: Browser, wf_id: str
) -> None:
    api = server
    await api.define(approval_workflow(wf_id))  # allowAnyoneToViewRuns, the Admin answers
    run_id = (await api.trigger(wf_id, {"name": "billing"}))["identifier"]
    page = await signed_in(browser, api, "member")
    await page.goto(f"{api.client.base_url}/ui/#/runs/{run_id}")
    await expect(page.locator("[data-node='ask']")).to_have_attribute("data-state", "running")
    await page.locator("[data-node='ask']").click()
    await expect(page.locator("#node-output")).to_contain_text("userInputs")
    for control in ("#cancel", "#force-cancel", "#rerun", "#rerun-from"):
        assert await page.locator(control).count() == 0, control
    assert await page.get_by_role("button", name="Approve", exact=True).count() == 0
    admin = await signed_in(browser, api)  # its creator and responder: offered both
    await admin.goto(f"{api.client.base_url}/ui/#/runs/{run_id}")
    await expect(admin.locator("#cancel")).to_be_visible()
    await admin.locator("[data-node='ask']").click()
    await expect(admin.get_by_role("button", name="Approve", exact=True)).to_be_visible()


async def test_a_run_page_of_100_node_runs_paints_and_its_figures_are_printed(
    server: Api, browser: Browser
) -> None:
    api = server
    identifier = f"wf-chain-{uuid.uuid4().hex[:8]}"
    await api.define(chain_workflow(identifier, 100))
    run_id = (await api.trigger(identifier, {}))["identifier"]
    run = await until(lambda: api.run(run_id), lambda r: r["status"] == "COMPLETED", within=60)
    assert len(run["nodeRuns"]) == 100
    page = await signed_in(browser, api)
    # The layout is cached per version: the first open pays for dot, later ones don't.
    figures = []
    for _ in range(3):
        await page.goto(f"{api.client.base_url}/ui/#/runs")
        started = time.perf_counter()
        await page.goto(f"{api.client.base_url}/ui/#/runs/{run_id}")
        await expect(page.locator("#page")).to_have_attribute("data-graph-ready", "true")
        await expect(page.locator("[data-node='c99']")).to_have_attribute("data-state", "success")
        figures.append((time.perf_counter() - started) * 1000)
    inside = await page.evaluate("window.__switchyard.firstPaintMs")
    assert await page.locator("g.node").count() == 100
    print(f"\nRun page of 100 node runs, navigation → graph painted: first {figures[0]:.0f} ms "
          f"(dot), then {figures[1]:.0f} / {figures[2]:.0f} ms; fetch + draw in the page "
          f"{inside:.0f} ms")  # fmt: skip


def approval_workflow(identifier: str) -> dict[str, Any]:
    """trigger → ask (INPUT: approve or reject, answered by the Admin, with a reason)
    → ship (KAFKA) when approved."""
    form = {
        "properties": {"reason": {"type": "string", "title": "Reason", "minLength": 3}},
        "required": ["reason"],
        "buttons": [{"identifier": "approve", "label": "Approve"},
                    {"identifier": "reject", "label": "Reject", "variant": "DANGER"}],
    }  # fmt: skip
    ask = {"type": "INPUT", "description": "Ship {{ .outputs.trigger.name }}?",
           "userInputs": form, "responders": {"users": ["admin@example.com"]},
           "outlets": [{"identifier": "approve"}, {"identifier": "reject"}]}  # fmt: skip
    definition = form_workflow(identifier)
    definition["nodes"] = [
        definition["nodes"][0],
        {"identifier": "ask", "title": "Approve shipping", "config": ask},
        {"identifier": "ship", "title": "Ship", "config": {"type": "KAFKA", "payload": {}}},
    ]
    definition["connections"] = [
        {"sourceIdentifier": "trigger", "targetIdentifier": "ask"},
        {
            "sourceIdentifier": "ask",
            "targetIdentifier": "ship",
            "sourceOutletIdentifier": "approve",
        },
    ]
    return definition


async def test_answer_an_approval_by_keyboard_in_a_narrow_window_then_rerun_from_a_node(
    server: Api, browser: Browser, wf_id: str
) -> None:
    api = server
    await api.define(approval_workflow(wf_id))
    run_id = (await api.trigger(wf_id, {"name": "billing"}))["identifier"]
    page = await signed_in(browser, api)
    await page.set_viewport_size({"width": 390, "height": 800})
    await page.goto(f"{api.client.base_url}/ui/#/runs/{run_id}")
    ask = page.locator("[data-node='ask']")
    await expect(ask).to_have_attribute("data-state", "running")
    # Narrow: nothing wider than the window but the graph's own scrolling box.
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page is {overflow} px wider than a 390 px window"
    # Keyboard: the graph's nodes are focusable; Enter opens a node's panel.
    await page.locator("[data-node='trigger']").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#node-panel h2")).to_have_text("Deploy")
    await ask.focus()
    await page.keyboard.press("Enter")
    panel = page.locator("#node-panel")
    await expect(panel).to_contain_text("Ship billing?")
    reason = panel.get_by_label("Reason")
    await reason.fill("no")
    await panel.get_by_role("button", name="Approve").click()
    await expect(reason).to_have_attribute("aria-invalid", "true")
    await expect(page.locator(f"#respond-{await _node_run_id(api, run_id, 'ask')}-reason-error")
                 ).to_contain_text("at least 3")  # fmt: skip
    await reason.fill("tested on staging")
    await reason.press("Tab")
    await page.keyboard.press("Enter")  # the focused Approve button
    await expect(ask).to_have_attribute("data-state", "success")
    ship = page.locator("[data-node='ship']")
    await expect(ship).to_have_attribute("data-state", "running")
    await patch(api, await _node_run_id(api, run_id, "ship"), {"status": "COMPLETED",
                                                              "result": "FAILED"})  # fmt: skip
    await expect(ship).to_have_attribute("data-state", "failed")
    await expect(page.locator("#run-status")).to_contain_text("FAILED")
    # Re-run from the failed node: the approval is reused, ship runs again.
    await ship.click()
    await page.get_by_role("button", name="Re-run from ship").click()
    await page.wait_for_url(lambda url: "#/runs/wfr_" in url and run_id not in url)
    rerun = await api.run(_run_id_of(page.url))
    assert rerun["rerunOf"] == {"identifier": run_id, "fromNode": "ship"}
    await expect(page.locator("[data-node='ship']")).to_have_attribute("data-state", "running")

    # The time range: runs created after now are none; before now, this one is there.
    await page.goto(f"{api.client.base_url}/ui/#/runs?workflow={wf_id}")
    await expect(page.locator(f"tr[data-run='{run_id}']")).to_be_visible()
    later = await page.evaluate(
        "new Date(Date.now() + 3600e3 - new Date().getTimezoneOffset() * 60e3)"
        ".toISOString().slice(0, 19)"
    )
    await page.fill("#after", later)
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("#runs-status")).to_have_text("No runs match these filters.")
    await page.fill("#after", "")
    await page.fill("#before", later)
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator(f"tr[data-run='{run_id}']")).to_be_visible()


async def _node_run_id(api: Api, run_id: str, node: str) -> str:
    run = await until(
        lambda: api.run(run_id),
        lambda r: any(n["node"]["identifier"] == node for n in r["nodeRuns"]),
    )
    return str(node_run(run, node)["identifier"])


async def test_the_api_docs_render_in_the_browser_from_the_server_alone(
    server: Api, browser: Browser
) -> None:
    base = str(server.client.base_url)
    page = await browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(base + "/docs")
    await expect(page.locator(".opblock").first).to_be_visible(timeout=20_000)
    local = (base, f"blob:{base}", "data:")
    elsewhere = [url for url in requested if not url.startswith(local)]
    assert elsewhere == [], f"the docs fetched from elsewhere: {elsewhere}"
    assert any(url.endswith("/docs/assets/swagger-ui-bundle.js") for url in requested)
