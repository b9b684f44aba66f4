"""What the bridge serves a browser besides the API: the UI's files, ``/`` → ``/ui/``,
offline ``/docs`` (no ``/redoc``), and the graph layouts the UI draws (Graphviz dot)."""

from __future__ import annotations

import re
import shutil
from typing import Any

import pytest

from switchyard.bridge.graph_layout import GraphLayouts, parse_layout, to_dot
from switchyard.bridge.web import UI_DIR
from switchyard.schemas import parse_workflow
from tests.bridge.support import Api, kafka_workflow, node_run, trigger_node
from tests.helpers import until

pytestmark = pytest.mark.integration


def branching_workflow(identifier: str) -> dict[str, Any]:
    """trigger → check (CONDITION: big / small, fallback) → three KAFKA nodes."""
    count = ".outputs.trigger.count"
    outlets = [
        {"identifier": "big", "title": "Big", "expression": f"{count} > 3"},
        {"identifier": "small", "title": "Small", "expression": f"{count} <= 3"},
    ]
    kafka = {"type": "KAFKA", "payload": {}}
    return {
        "identifier": identifier,
        "nodes": [
            trigger_node(),
            {
                "identifier": "check",
                "title": "Check",
                "config": {"type": "CONDITION", "outlets": outlets},
            },
            {"identifier": "large", "title": 'Large "quoted" title', "config": kafka},
            {"identifier": "little", "config": kafka},
            {"identifier": "other", "config": kafka},
        ],
        "connections": [
            {"sourceIdentifier": "trigger", "targetIdentifier": "check"},
            {
                "sourceIdentifier": "check",
                "targetIdentifier": "large",
                "sourceOutletIdentifier": "big",
            },
            {
                "sourceIdentifier": "check",
                "targetIdentifier": "little",
                "sourceOutletIdentifier": "small",
            },
            {"sourceIdentifier": "check", "targetIdentifier": "other", "fallback": True},
        ],
    }


def test_the_dot_source_quotes_titles_and_names_each_edge_by_its_index() -> None:
    workflow = parse_workflow({**branching_workflow("wf-dot"), "version": 1})
    source = to_dot(workflow)
    assert '"check" -> "large" [id="e1" label="Big"];' in source
    assert '"check" -> "other" [id="e3" label="fallback"];' in source
    assert source.count(" -> ") == 4


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
async def test_a_layout_has_every_node_box_and_edge_path_top_left_origin() -> None:
    workflow = parse_workflow({**branching_workflow("wf-dot"), "version": 1})
    layout = await GraphLayouts().layout(workflow)
    boxes = {node["identifier"]: node for node in layout["nodes"]}
    assert set(boxes) == {"trigger", "check", "large", "little", "other"}
    assert boxes["large"]["title"] == 'Large "quoted" title'
    assert boxes["check"]["type"] == "CONDITION"
    # Top to bottom: the trigger above the condition above its branches.
    assert boxes["trigger"]["y"] < boxes["check"]["y"] < boxes["little"]["y"]
    for node in layout["nodes"]:
        assert 0 <= node["x"] <= layout["width"]
        assert 0 <= node["y"] <= layout["height"]
    edges = {edge["index"]: edge for edge in layout["edges"]}
    assert edges[1]["outlet"] == "big"
    assert edges[1]["label"] == "Big"
    assert edges[3]["fallback"] is True
    for edge in edges.values():
        assert (len(edge["points"]) - 1) % 3 == 0  # a start, then cubic Bézier triples
        assert edge["end"] is not None


def test_an_unreadable_dot_answer_is_a_layout_failure_not_a_crash() -> None:
    from switchyard.bridge.graph_layout import LayoutFailed

    workflow = parse_workflow({**branching_workflow("wf-dot"), "version": 1})
    with pytest.raises(LayoutFailed, match="could not be read"):
        parse_layout(workflow, b'{"bb": "0,0,1,1", "objects": [{"name": "nope"}]}')


async def test_layouts_of_a_version_and_of_a_run_over_the_api(
    api: Api, engine: object, wf_id: str
) -> None:
    await api.define(branching_workflow(wf_id))
    response = await api.call("GET", f"/v1/workflows/{wf_id}/layout?version=1")
    assert response.status_code == 200, response.text
    layout = response.json()["layout"]
    assert layout["workflow"] == {"identifier": wf_id, "version": 1}
    assert len(layout["nodes"]) == 5
    assert len(layout["edges"]) == 4
    # A run's layout is its pinned version's, even after the workflow changed.
    run = await api.trigger(wf_id, {"name": "ab", "count": 5})
    changed = branching_workflow(wf_id)
    changed["nodes"][4]["title"] = "Renamed"
    assert (await api.call("PUT", f"/v1/workflows/{wf_id}", json=changed)).status_code == 200
    pinned = await api.call("GET", f"/v1/workflows/runs/{run['identifier']}/layout")
    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["layout"]["workflow"]["version"] == 1
    newest = (await api.call("GET", f"/v1/workflows/{wf_id}/layout")).json()["layout"]
    assert newest["workflow"]["version"] == 2
    assert {n["identifier"]: n["title"] for n in newest["nodes"]}["other"] == "Renamed"
    missing = await api.call("GET", f"/v1/workflows/{wf_id}/layout?version=9")
    assert missing.status_code == 404
    assert "no version 9" in missing.json()["message"]
    await until(lambda: api.run(run["identifier"]), lambda r: len(r["nodeRuns"]) >= 3)
    assert node_run(await api.run(run["identifier"]), "large")["status"] == "IN_PROGRESS"


async def test_a_member_sees_the_graph_of_an_open_run_but_not_of_a_private_one(
    api: Api, engine: object, wf_id: str
) -> None:
    await api.define(kafka_workflow(wf_id, anyone=True))
    run = await api.trigger(wf_id, {"name": "ab"})
    open_run = await api.call("GET", f"/v1/workflows/runs/{run['identifier']}/layout", "member")
    assert open_run.status_code == 200, open_run.text
    # Members may not run this workflow (Admins only), so its own layout is hidden.
    hidden = await api.call("GET", f"/v1/workflows/{wf_id}/layout", "member")
    assert hidden.status_code == 404


async def test_root_and_ui_lead_to_the_ui_whose_files_are_all_served(api: Api) -> None:
    for path in ("/", "/ui"):
        response = await api.client.get(path)
        assert response.status_code == 307
        assert response.headers["location"] == "/ui/"
    index = await api.client.get("/ui/")
    assert index.status_code == 200
    assert "<title>Switchyard</title>" in index.text
    for file in UI_DIR.iterdir():
        response = await api.client.get(f"/ui/{file.name}")
        assert response.status_code == 200, file.name
        # Nothing loaded from elsewhere: no absolute URL in any of the UI's files.
        # (the SVG namespace is a name, never fetched).
        text = response.text.replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"https?://", text), file.name


LOCAL = re.compile(r"""(?:src|href)=["']([^"']+)["']|url:\s*'([^']+)'""")


async def test_the_api_docs_reference_only_local_urls_and_they_answer(api: Api) -> None:
    page = "/docs"
    response = await api.client.get(page)
    assert response.status_code == 200
    assert "cdn." not in response.text
    assert "fonts.googleapis" not in response.text
    referenced = [a or b for a, b in LOCAL.findall(response.text)]
    assert len(referenced) >= 2, referenced
    for url in referenced:
        assert url.startswith("/"), f"{page} references {url}"
        assert (await api.client.get(url)).status_code == 200, url
    # ReDoc's page would load its vendor's logo from a CDN: not served.
    assert (await api.client.get("/redoc")).status_code == 404
