"""A workflow version's graph laid out by Graphviz ``dot``, for the web UI to draw.

``to_dot`` and ``parse_layout`` are pure (a workflow in, DOT text out; ``dot -Tjson``'s
answer in, boxes and edge paths out); :class:`GraphLayouts` runs ``dot`` in a
subprocess, bounded in time and in how many run at once, and keeps each answer:
a stored workflow version never changes, so ``(identifier, version)`` is a cache
key that never goes stale.

Coordinates are points with the origin at the top left (``dot`` puts it at the
bottom left): ``x, y`` is a node's centre, an edge's ``points`` are a start point
followed by cubic Bézier triples (SVG ``M p0 C p1 p2 p3 ...``), ``end`` the arrow tip.
"""

from __future__ import annotations

import asyncio
import shutil
from collections import OrderedDict
from typing import Any

import orjson

from switchyard.schemas import Workflow

NODE_WIDTH_IN = 2.4  # fixed boxes: the browser writes the title inside, clipped
NODE_HEIGHT_IN = 0.7
DOT_TIMEOUT_S = 10.0


class LayoutFailed(Exception):
    """``dot`` is missing, timed out or answered something unreadable."""


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _outlet_titles(workflow: Workflow) -> dict[tuple[str, str], str]:
    titles: dict[tuple[str, str], str] = {}
    for node in workflow.nodes:
        for outlet in getattr(node.config, "outlets", None) or []:
            titles[node.identifier, outlet.identifier] = outlet.title or outlet.identifier
    return titles


def edge_label(workflow: Workflow, index: int) -> str:
    """What an edge is labelled with: its outlet's title, ``fallback``, or nothing."""
    connection = workflow.connections[index]
    if connection.fallback:
        return "fallback"
    outlet = connection.source_outlet_identifier
    if outlet is None:
        return ""
    return _outlet_titles(workflow).get((connection.source_identifier, outlet), outlet)


def to_dot(workflow: Workflow) -> str:
    """The DOT text of the graph; node names are the identifiers, edges ``e<index>``."""
    lines = [
        "digraph workflow {",
        "  rankdir=TB; nodesep=0.4; ranksep=0.5;",
        f"  node [shape=box fixedsize=true width={NODE_WIDTH_IN} height={NODE_HEIGHT_IN}"
        ' label=""];',
        "  edge [fontsize=11];",
    ]
    lines += [f"  {_quote(node.identifier)};" for node in workflow.nodes]
    for index, connection in enumerate(workflow.connections):
        label = edge_label(workflow, index)
        attributes = f'id="e{index}"' + (f" label={_quote(label)}" if label else "")
        source, target = _quote(connection.source_identifier), _quote(connection.target_identifier)
        lines.append(f"  {source} -> {target} [{attributes}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _pair(text: str, height: float) -> list[float]:
    x, y = text.split(",")[:2]
    return [round(float(x), 2), round(height - float(y), 2)]


def _edge_geometry(pos: str, height: float) -> tuple[list[list[float]], list[float] | None]:
    points: list[list[float]] = []
    end: list[float] | None = None
    start: list[float] | None = None
    for part in pos.split():
        if part.startswith("e,"):
            end = _pair(part[2:], height)
        elif part.startswith("s,"):
            start = _pair(part[2:], height)
        else:
            points.append(_pair(part, height))
    if start is not None:
        points.insert(0, start)
    return points, end


def _node_box(item: dict[str, Any], height: float) -> dict[str, Any]:
    x, y = _pair(item["pos"], height)
    return {
        "identifier": item["name"],
        "x": x,
        "y": y,
        "width": round(float(item["width"]) * 72, 2),
        "height": round(float(item["height"]) * 72, 2),
    }


def parse_layout(workflow: Workflow, answer: bytes) -> dict[str, Any]:
    """``dot -Tjson``'s answer for ``to_dot(workflow)`` → the layout the UI draws.

    Each node carries its title and type beside its box, and each edge its
    connection (source, target, outlet, fallback), so the UI needs no other read.
    """
    try:
        data = orjson.loads(answer)
        _, _, width, height = (float(v) for v in data["bb"].split(","))
        by_id = {node.identifier: node for node in workflow.nodes}
        nodes = []
        for item in data.get("objects", []):
            node = by_id[item["name"]]
            box = _node_box(item, height)
            nodes.append({**box, "title": node.title or node.identifier, "type": node.type})
        edges = []
        for item in data.get("edges", []):
            index = int(item["id"][1:])
            connection = workflow.connections[index]
            points, end = _edge_geometry(item["pos"], height)
            label = _pair(item["lp"], height) if "lp" in item else None
            edges.append({
                "index": index,
                "source": connection.source_identifier,
                "target": connection.target_identifier,
                "outlet": connection.source_outlet_identifier,
                "fallback": connection.fallback,
                "label": edge_label(workflow, index),
                "labelAt": label,
                "points": points,
                "end": end,
            })  # fmt: skip
    except (orjson.JSONDecodeError, KeyError, ValueError, IndexError, TypeError) as error:
        raise LayoutFailed(f"dot answered a layout that could not be read ({error!r})") from None
    return {"width": round(width, 2), "height": round(height, 2), "nodes": nodes, "edges": edges}


class GraphLayouts:
    """Lays out workflow versions with ``dot``, one answer kept per version (LRU)."""

    def __init__(
        self, *, size: int = 256, timeout_s: float = DOT_TIMEOUT_S, parallel: int = 2
    ) -> None:
        self._size = size
        self._timeout_s = timeout_s
        self._slots = asyncio.Semaphore(parallel)
        self._kept: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()

    async def layout(self, workflow: Workflow) -> dict[str, Any]:
        key = (workflow.identifier, workflow.version or 0)
        if key in self._kept:
            self._kept.move_to_end(key)
            return self._kept[key]
        async with self._slots:
            if key not in self._kept:  # another request may have laid it out meanwhile
                answer = await self._run_dot(to_dot(workflow))
                self._kept[key] = parse_layout(workflow, answer)
                while len(self._kept) > self._size:
                    self._kept.popitem(last=False)
        return self._kept[key]

    async def _run_dot(self, source: str) -> bytes:
        dot = shutil.which("dot")
        if dot is None:
            raise LayoutFailed(
                "Graphviz dot is not installed on the server (apt-get install graphviz)"
            )
        process = await asyncio.create_subprocess_exec(
            dot, "-Tjson",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(process.communicate(source.encode()), self._timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise LayoutFailed(f"dot took longer than {self._timeout_s:g} s") from None
        if process.returncode != 0:
            raise LayoutFailed(f"dot failed: {err.decode(errors='replace').strip()[:300]}")
        return out
