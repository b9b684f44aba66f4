// Draws a layout from GET .../layout (Graphviz dot's boxes and edge paths) as SVG, and
// colours it by a run's node runs: taken connections solid, not taken dashed and grey.

import { svg, stateClass } from "./dom.js";

// The newest node run of each node (a retried node has several attempts).
export function latestByNode(run) {
  const latest = {};
  for (const nodeRun of (run && run.nodeRuns) || []) latest[nodeRun.node.identifier] = nodeRun;
  return latest;
}

const BRANCHING = new Set(["CONDITION", "INPUT"]);

// "taken", "skipped" (its source finished and did not take it) or "pending".
export function edgeState(edge, types, latest) {
  const source = latest[edge.source];
  if (!source || source.status !== "COMPLETED") return latest[edge.target] ? "taken" : "pending";
  if (BRANCHING.has(types[edge.source])) {
    const output = source.output || {};
    const chosen = output.selectedOutlet && output.selectedOutlet.identifier;
    const taken = edge.fallback ? output.fallback === true : edge.outlet === chosen;
    return taken ? "taken" : "skipped";
  }
  return latest[edge.target] ? "taken" : "skipped";
}

// A node's class: its node run's state, "skipped" on a branch not taken, else "pending".
export function nodeState(node, layout, latest, run) {
  const nodeRun = latest[node.identifier];
  if (nodeRun) return stateClass(nodeRun.status, nodeRun.result);
  const incoming = layout.edges.filter((e) => e.target === node.identifier);
  const types = Object.fromEntries(layout.nodes.map((n) => [n.identifier, n.type]));
  const blocked = incoming.length > 0 && incoming.every((e) => edgeState(e, types, latest) === "skipped");
  return blocked || (run && run.status === "COMPLETED") ? "skipped" : "pending";
}

function pathOf(points) {
  if (!points.length) return "";
  let d = `M${points[0][0]},${points[0][1]}`;
  for (let i = 1; i + 2 < points.length + 1; i += 3) {
    const [a, b, c] = [points[i], points[i + 1], points[i + 2]];
    if (!c) break;
    d += ` C${a[0]},${a[1]} ${b[0]},${b[1]} ${c[0]},${c[1]}`;
  }
  return d;
}

function arrow(edge) {
  if (!edge.end || !edge.points.length) return null;
  const from = edge.points[edge.points.length - 1];
  const [tx, ty] = edge.end;
  const angle = Math.atan2(ty - from[1], tx - from[0]);
  const side = (da) => `${tx - 9 * Math.cos(angle + da)},${ty - 9 * Math.sin(angle + da)}`;
  return svg("polygon", { class: "arrow", points: `${tx},${ty} ${side(0.4)} ${side(-0.4)}` });
}

const TYPE_LABEL = {
  SELF_SERVE_TRIGGER: "trigger", EVENT_TRIGGER: "event trigger", SCHEDULE_TRIGGER: "schedule",
  CONDITION: "condition", INPUT: "approval", WEBHOOK: "webhook", KAFKA: "kafka",
  INTEGRATION_ACTION: "integration", UPSERT_ENTITY: "entity", AI: "AI", AI_AGENT: "AI agent",
};

function clip(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

// The SVG element; each node is a focusable button-like <g> calling onSelect(identifier).
export function drawGraph(layout, onSelect) {
  const pad = 8;
  const root = svg("svg", {
    class: "graph", role: "group", "aria-label": "Workflow graph",
    viewBox: `${-pad} ${-pad} ${layout.width + 2 * pad} ${layout.height + 2 * pad}`,
    width: layout.width + 2 * pad, height: layout.height + 2 * pad,
  });
  for (const edge of layout.edges) {
    root.append(svg("g", { class: "edge pending", "data-edge": edge.index, "data-source": edge.source, "data-target": edge.target },
      svg("path", { d: pathOf(edge.points) }), arrow(edge),
      edge.label && edge.labelAt ? svg("text", { x: edge.labelAt[0], y: edge.labelAt[1] + 4, "text-anchor": "middle", class: "edge-label" }, edge.label) : null));
  }
  for (const node of layout.nodes) {
    const x = node.x - node.width / 2;
    const y = node.y - node.height / 2;
    const select = () => onSelect(node.identifier);
    const group = svg("g", {
      class: "node pending", tabindex: 0, role: "button", "data-node": node.identifier,
      "aria-label": `${node.title} (${TYPE_LABEL[node.type] || node.type})`,
      onclick: select,
      onkeydown: (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); select(); } },
    },
    svg("rect", { x, y, width: node.width, height: node.height, rx: 8 }),
    svg("text", { x: node.x, y: node.y - 3, "text-anchor": "middle", class: "node-title" }, clip(node.title, 26)),
    svg("text", { x: node.x, y: node.y + 14, "text-anchor": "middle", class: "node-type" }, TYPE_LABEL[node.type] || node.type));
    group.append(svg("title", {}, `${node.identifier}: ${node.type}`));
    root.append(group);
  }
  return root;
}

const STATES = ["pending", "running", "success", "failed", "cancelled", "cancelling", "skipped", "selected"];

// Re-colours a drawn graph for the run's current node runs (no re-layout).
export function paintGraph(root, layout, run, selected) {
  const latest = latestByNode(run);
  const types = Object.fromEntries(layout.nodes.map((n) => [n.identifier, n.type]));
  for (const node of layout.nodes) {
    const el = root.querySelector(`[data-node="${CSS.escape(node.identifier)}"]`);
    const state = nodeState(node, layout, latest, run);
    el.classList.remove(...STATES);
    el.classList.add(state);
    if (node.identifier === selected) el.classList.add("selected");
    el.dataset.state = state;
    el.setAttribute("aria-pressed", String(node.identifier === selected));
  }
  for (const edge of layout.edges) {
    const el = root.querySelector(`[data-edge="${edge.index}"]`);
    const state = edgeState(edge, types, latest);
    el.classList.remove("pending", "taken", "skipped");
    el.classList.add(state);
    el.dataset.state = state;
  }
}
