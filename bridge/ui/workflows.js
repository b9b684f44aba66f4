// Workflows: the list, one workflow (versions, its definition's JSON, its graph, its
// self-serve trigger forms, its runs), and an entity's page with its runs.

import { api, query, ApiError } from "./api.js";
import { h, replace, jsonTree, when, badge } from "./dom.js";
import { drawGraph } from "./graph.js";
import { inputsForm, formMessage } from "./forms.js";

export async function renderWorkflows(main) {
  const { workflows } = await api("GET", "/v1/workflows");
  replace(main,
    h("h1", {}, "Workflows"),
    workflows.length ? h("ul", { class: "cards", id: "workflows" }, workflows.map((w) => h("li", { class: "card" },
      h("h2", {}, h("a", { href: `#/workflows/${encodeURIComponent(w.identifier)}` }, w.title || w.identifier)),
      h("p", { class: "muted" }, `${w.identifier} · version ${w.version} · ${w.nodes.length} nodes`),
      w.description ? h("p", {}, w.description) : null,
      h("a", { href: `#/runs?workflow=${encodeURIComponent(w.identifier)}` }, "Runs")))) : h("p", {}, "No workflows you may see."));
}

function triggerForm(workflow, node) {
  const config = node.config;
  const form = inputsForm(config.userInputs || {}, `trigger-${node.identifier}`);
  const message = h("p", { class: "error", role: "alert", id: `trigger-${node.identifier}-error` });
  const element = h("form", { class: "card trigger", "aria-label": `Run ${node.title || node.identifier}`, dataset: { trigger: node.identifier } },
    h("h2", {}, `Run: ${node.title || node.identifier}`),
    node.description ? h("p", { class: "muted" }, node.description) : null,
    form.element, message,
    h("button", { type: "submit", class: "primary" }, "Run"));
  element.addEventListener("submit", async (event) => {
    event.preventDefault();
    form.clear();
    formMessage(message, "");
    try {
      const body = await api("POST", `/v1/workflows/${encodeURIComponent(workflow.identifier)}/runs`, { inputs: form.values(), nodeIdentifier: node.identifier });
      location.hash = `#/runs/${body.workflowRun.identifier}`;
    } catch (failure) {
      const placed = failure instanceof ApiError && failure.status === 422 && form.showErrors(failure.message);
      if (!placed) formMessage(message, failure.message);
    }
  });
  return element;
}

export async function renderWorkflow(main, identifier, params) {
  const newest = (await api("GET", `/v1/workflows/${encodeURIComponent(identifier)}`)).workflow;
  const version = Number(params.get("version") || newest.version);
  let workflow = newest;
  if (version !== newest.version) {
    workflow = await api("GET", `/v1/workflows/${encodeURIComponent(identifier)}${query({ version })}`)
      .then((b) => (b.workflow.version === version ? b.workflow : null)).catch(() => null);
  }
  const layout = await api("GET", `/v1/workflows/${encodeURIComponent(identifier)}/layout${query({ version })}`).then((b) => b.layout).catch(() => null);
  const versions = h("select", { id: "version", "aria-label": "Version" },
    Array.from({ length: newest.version }, (_, i) => newest.version - i).map((v) => h("option", { value: v, selected: v === version || null }, `version ${v}${v === newest.version ? " (newest)" : ""}`)));
  versions.addEventListener("change", () => { location.hash = `#/workflows/${encodeURIComponent(identifier)}?version=${versions.value}`; });
  const triggers = newest.nodes.filter((n) => n.config.type === "SELF_SERVE_TRIGGER" && n.config.published !== false);
  replace(main,
    h("div", { class: "page-head" }, h("h1", {}, newest.title || identifier), versions,
      h("a", { class: "button", href: `#/runs?workflow=${encodeURIComponent(identifier)}` }, "Runs")),
    newest.description ? h("p", {}, newest.description) : null,
    triggers.map((node) => triggerForm(newest, node)),
    h("h2", {}, `Graph of version ${version}`),
    layout ? h("div", { class: "graph-box" }, drawGraph(layout, () => {})) : h("p", { class: "muted" }, "No layout for this version."),
    h("h2", {}, `Definition of version ${version}`),
    workflow ? h("div", { id: "definition" }, jsonTree(workflow, null, true)) : h("p", { class: "muted" }, "This server does not return older versions yet."));
}

export async function renderEntity(main, blueprint, identifier) {
  const path = `/v1/blueprints/${encodeURIComponent(blueprint)}/entities/${encodeURIComponent(identifier)}`;
  const { entity } = await api("GET", path);
  const runs = await api("GET", `/v1/workflows/runs${query({ entity: `${blueprint}/${identifier}`, limit: 50 })}`)
    .then((b) => b.workflowRuns).catch(() => []);
  replace(main,
    h("h1", {}, entity.title || identifier, h("span", { class: "muted" }, ` (${blueprint})`)),
    h("h2", {}, "Properties"), jsonTree(entity, null, true),
    h("h2", {}, "Runs"),
    runs.length ? h("ul", { class: "entity-runs" }, runs.map((r) => h("li", {},
      h("a", { href: `#/runs/${r.identifier}`, class: "mono" }, r.identifier), " ", r.workflow.identifier, " ", badge(r.status, r.result), " ", when(r.createdAt))))
      : h("p", { class: "muted" }, "No runs name this entity."));
}
