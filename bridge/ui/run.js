// The run page: the pinned version's graph coloured by node runs, a node panel, actions,
// live from the run's stream (each event re-reads the run: simple and always right).

import { api, stream, ApiError, whoAmI, maySteer, mayRespond } from "./api.js";
import { h, replace, when, duration, badge, jsonTree, toast } from "./dom.js";
import { drawGraph, paintGraph, latestByNode } from "./graph.js";
import { inputsForm, formMessage } from "./forms.js";

const LEVELS = ["DEBUG", "INFO", "WARN", "ERROR"];

// What tests and the curious read: each event's engine time and when the page got it.
const probe = (window.__switchyard = window.__switchyard || { events: [] });

function field(label, value) {
  return [h("dt", {}, label), h("dd", {}, value ?? "—")];
}

function logsView(nodeRun, level) {
  const minimum = LEVELS.indexOf(level);
  const shown = (nodeRun.nodeRunLogs || []).filter((l) => LEVELS.indexOf(l.logLevel) >= minimum);
  if (!shown.length) return h("p", { class: "muted" }, "No logs at this level.");
  return h("table", { class: "logs", id: "logs" },
    h("thead", {}, h("tr", {}, ["Time", "Level", "Message", "Tags"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, shown.map((l) => h("tr", { class: `log-${l.logLevel.toLowerCase()}` },
      h("td", { class: "mono" }, when(l.createdAt)),
      h("td", {}, h("span", { class: `level ${l.logLevel.toLowerCase()}` }, l.logLevel)),
      h("td", { class: "log-text" }, l.log),
      h("td", {}, Object.entries(l.tags || {}).map(([k, v]) => h("span", { class: "tag" }, `${k}=${v}`)))))));
}

function approvalForm(nodeRun, refresh) {
  const output = nodeRun.output || {};
  const userInputs = output.userInputs || {};
  const form = inputsForm(userInputs, `respond-${nodeRun.identifier}`);
  const message = h("p", { class: "error", role: "alert" });
  const respond = async (button) => {
    try {
      await api("POST", `/v1/workflows/nodes/runs/${nodeRun.identifier}/respond`, { buttonIdentifier: button, inputs: form.values() });
      toast("Answer sent.");
      refresh();
    } catch (failure) {
      if (!(failure instanceof ApiError) || !form.showErrors(failure.message)) formMessage(message, failure.message);
    }
  };
  return h("section", { class: "approval", "aria-label": "Approval" },
    h("h3", {}, "Waiting for an answer"),
    output.description ? h("p", {}, output.description) : null,
    form.element,
    h("div", { class: "buttons" }, (userInputs.buttons || []).map((b) =>
      h("button", { type: "button", class: b.variant === "DANGER" ? "danger" : "primary", onclick: () => respond(b.identifier) }, b.label))),
    message,
    (output.responses || []).length ? jsonTree(output.responses, "responses", false) : null);
}

function attemptsOf(run, node) {
  return run.nodeRuns.filter((nr) => nr.node.identifier === node);
}

function nodePanel(run, node, layoutNode, ui) {
  const attempts = attemptsOf(run, node);
  if (!attempts.length) {
    return h("section", { class: "panel", id: "node-panel", "aria-label": `Node ${node}` },
      h("h2", {}, layoutNode ? layoutNode.title : node), h("p", { class: "muted" }, "This node has not run in this run."));
  }
  const nodeRun = attempts.find((a) => a.identifier === ui.attempt) || attempts[attempts.length - 1];
  const level = h("select", { id: "log-level", "aria-label": "Lowest log level shown" }, LEVELS.map((l) => h("option", { value: l, selected: l === ui.level || null }, l)));
  const logs = h("div", { id: "logs-box" }, logsView(nodeRun, ui.level));
  level.addEventListener("change", () => { ui.level = level.value; replace(logs, logsView(nodeRun, ui.level)); });
  const waiting = nodeRun.nodeConfigType === "INPUT" && nodeRun.status === "IN_PROGRESS";
  return h("section", { class: "panel", id: "node-panel", "aria-label": `Node ${node}` },
    h("div", { class: "panel-head" }, h("h2", {}, nodeRun.nodeTitle || node), badge(nodeRun.status, nodeRun.result)),
    attempts.length > 1 ? h("p", {}, "Attempts: ", attempts.map((a) =>
      h("button", { type: "button", class: a === nodeRun ? "chip on" : "chip", onclick: () => ui.pickAttempt(a.identifier) }, `#${a.attempt ?? "?"} ${a.result || a.status}`))) : null,
    h("dl", { class: "facts" },
      field("Node run", h("span", { class: "mono", id: "node-run-id" }, nodeRun.identifier)),
      field("Type", nodeRun.nodeConfigType),
      field("Status", nodeRun.status), field("Result", nodeRun.result),
      nodeRun.statusLabel ? field("Label", nodeRun.statusLabel.text) : null,
      field("Attempt", nodeRun.attempt), nodeRun.retryOf ? field("Retry of", nodeRun.retryOf) : null,
      nodeRun.reusedFrom ? field("Reused from", nodeRun.reusedFrom) : null,
      field("Started", when(nodeRun.createdAt)), field("Completed", when(nodeRun.completedAt)),
      field("Duration", duration(nodeRun.createdAt, nodeRun.completedAt)),
      field("External run", nodeRun.externalRunId),
      field("Links", (nodeRun.links || []).length ? nodeRun.links.map((l) => h("a", { href: l, rel: "noopener noreferrer", target: "_blank" }, l)) : null)),
    waiting && mayRespond(ui.me, nodeRun.output && nodeRun.output.responders)
      ? approvalForm(nodeRun, ui.refresh) : null,
    h("h3", {}, "Output"), h("div", { id: "node-output" }, jsonTree(nodeRun.output, null, true)),
    h("h3", {}, "variables.outputs"), h("div", { id: "node-variables" }, jsonTree((run.variables.outputs || {})[node] ?? null, null, true)),
    h("div", { class: "logs-head" }, h("h3", {}, `Logs (${(nodeRun.nodeRunLogs || []).length})`), h("label", { for: "log-level" }, "Level ≥ "), level),
    logs,
    run.status === "COMPLETED" && maySteer(ui.me, run) ? h("button", { type: "button", id: "rerun-from", onclick: () => ui.rerun(node) }, `Re-run from ${node}`) : null);
}

function header(run, ui) {
  const steer = maySteer(ui.me, run);
  const active = steer && run.status !== "COMPLETED";
  return h("div", { class: "run-head" },
    h("div", {},
      h("h1", {}, "Run ", h("span", { class: "mono", id: "run-id" }, run.identifier)),
      h("p", { class: "muted" },
        h("a", { href: `#/workflows/${encodeURIComponent(run.workflow.identifier)}?version=${run.workflow.version}` }, run.workflow.identifier),
        ` v${run.workflow.version} · by ${run.createdBy} · ${when(run.createdAt)} · ${duration(run.createdAt, run.completedAt)}`,
        run.rerunOf ? [" · re-run of ", h("a", { href: `#/runs/${run.rerunOf.identifier}` }, run.rerunOf.identifier), run.rerunOf.fromNode ? ` from ${run.rerunOf.fromNode}` : ""] : null)),
    h("div", { class: "run-state" }, h("span", { id: "run-status" }, badge(run.status, run.result)),
      h("div", { class: "buttons" },
        active ? h("button", { type: "button", id: "cancel", onclick: () => ui.cancel(false) }, "Cancel") : null,
        active ? h("button", { type: "button", id: "force-cancel", class: "danger", onclick: () => ui.cancel(true) }, "Force cancel") : null,
        steer && run.status === "COMPLETED" ? h("button", { type: "button", id: "rerun", class: "primary", onclick: () => ui.rerun(null) }, "Re-run") : null)));
}

export async function renderRun(main, runId, params) {
  const started = performance.now();
  const [runBody, layoutBody, me] = await Promise.all([
    api("GET", `/v1/workflows/runs/${runId}`),
    api("GET", `/v1/workflows/runs/${runId}/layout`).catch((failure) => ({ error: failure })),
    whoAmI().catch(() => null),
  ]);
  let run = runBody.workflowRun;
  const layout = layoutBody.layout || null;
  const ui = { selected: params.get("node"), level: "DEBUG", attempt: null, me };
  const head = h("div");
  const panel = h("div", { class: "panel-box" });
  const graphBox = h("div", { class: "graph-box", id: "graph" });
  const graph = layout ? drawGraph(layout, (node) => { ui.selected = node; ui.attempt = null; paint(); }) : null;
  if (graph) graphBox.append(graph);
  else graphBox.append(h("p", { class: "error" }, `No graph: ${layoutBody.error.message}`));
  // The node runs as a list too: what a screen reader reads, and the way in when
  // there is no graph (dot missing on the server).
  const list = h("ol", { class: "node-list", "aria-label": "Node runs" });
  replace(main, head, h("div", { class: "run-body" }, h("div", {}, graphBox,
    h("details", { class: "node-list-box", open: graph ? null : true }, h("summary", {}, "Node runs"), list)), panel));

  const byId = layout ? Object.fromEntries(layout.nodes.map((n) => [n.identifier, n])) : {};
  function paint() {
    replace(head, header(run, ui));
    if (!ui.selected) ui.selected = (run.nodeRuns.find((nr) => nr.status === "IN_PROGRESS") || run.nodeRuns[run.nodeRuns.length - 1] || {}).node?.identifier;
    if (graph) paintGraph(graph, layout, run, ui.selected);
    const latest = latestByNode(run);
    replace(list, run.nodeRuns.map((nr) => h("li", {}, h("button", {
      type: "button", class: "link", "aria-pressed": String(nr.node.identifier === ui.selected),
      onclick: () => { ui.selected = nr.node.identifier; ui.attempt = nr.identifier; paint(); },
    }, nr.nodeTitle || nr.node.identifier), " ", badge(nr.status, nr.result))));
    replace(panel, ui.selected ? nodePanel(run, ui.selected, byId[ui.selected], ui) : h("p", {}, "Select a node."));
    main.dataset.runStatus = run.status;
    main.dataset.nodes = Object.values(latest).map((nr) => `${nr.node.identifier}=${nr.status}/${nr.result || ""}`).join(",");
  }
  let inFlight = null;
  let again = false;
  ui.refresh = () => {
    if (inFlight) { again = true; return; }
    inFlight = api("GET", `/v1/workflows/runs/${runId}`).then((body) => { run = body.workflowRun; paint(); })
      .catch(() => {}).finally(() => { inFlight = null; if (again) { again = false; ui.refresh(); } });
  };
  ui.pickAttempt = (id) => { ui.attempt = id; paint(); };
  ui.cancel = async (force) => {
    try { await api("POST", `/v1/workflows/runs/${runId}/cancel${force ? "?force=true" : ""}`); toast(force ? "Force cancel sent." : "Cancel sent."); ui.refresh(); }
    catch (failure) { toast(failure.message, "error"); }
  };
  ui.rerun = async (fromNode) => {
    try {
      const body = await api("POST", `/v1/workflows/runs/${runId}/rerun`, fromNode ? { fromNode } : {});
      location.hash = `#/runs/${body.workflowRun.identifier}`;
    } catch (failure) { toast(failure.message, "error"); }
  };
  paint();
  probe.firstPaintMs = performance.now() - started;
  main.dataset.graphReady = "true";

  const subscription = stream(`/v1/workflows/runs/${runId}/stream`, {
    onEvent: (event, receivedAt) => {
      probe.events.push({ runId: event.runId, seq: event.seq, kind: event.kind, at: event.at, receivedAt });
      ui.refresh();
    },
    onEnd: () => ui.refresh(),
    onPoll: () => { if (run.status !== "COMPLETED") ui.refresh(); },
  });
  probe.streamMode = () => subscription.mode;
  return () => subscription.stop();
}
