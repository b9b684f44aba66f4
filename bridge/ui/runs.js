// The runs list: filters (kept in the URL's hash), newest first, paging, live from the list stream.

import { api, query, stream } from "./api.js";
import { h, replace, when, duration, badge } from "./dom.js";

const PAGE = 20;
const STATUSES = ["IN_PROGRESS", "CANCELLING", "COMPLETED"];
const RESULTS = ["SUCCESS", "FAILED", "CANCELLED"];

function select(id, label, values, chosen) {
  return h("div", { class: "filter" }, h("label", { for: id }, label),
    h("select", { id, name: id },
      h("option", { value: "" }, "Any"),
      values.map((v) => h("option", { value: v, selected: v === chosen || null }, v))));
}

function text(id, label, attrs) {
  return h("div", { class: "filter" }, h("label", { for: id }, label), h("input", { id, name: id, ...attrs }));
}

function isoOrEmpty(local) {
  return local ? new Date(local).toISOString() : "";
}

// The API's list query for the filters in the hash (createdAfter/createdBefore as ISO).
export function listQuery(params, offset = 0) {
  return {
    workflowIdentifiers: params.get("workflow") || "",
    statuses: params.get("status") || "",
    results: params.get("result") || "",
    createdBy: params.get("createdBy") || "",
    createdAfter: isoOrEmpty(params.get("after")),
    createdBefore: isoOrEmpty(params.get("before")),
    entity: params.get("entity") || "",
    limit: PAGE,
    offset,
  };
}

function filtersForm(params) {
  const form = h("form", { class: "filters", "aria-label": "Filter runs" },
    text("workflow", "Workflow", { list: "workflow-ids", value: params.get("workflow") || "", placeholder: "any" }),
    h("datalist", { id: "workflow-ids" }),
    select("status", "Status", STATUSES, params.get("status")),
    select("result", "Result", RESULTS, params.get("result")),
    text("createdBy", "Created by", { value: params.get("createdBy") || "", placeholder: "email or name" }),
    text("after", "Created after", { type: "datetime-local", step: 1, value: params.get("after") || "" }),
    text("before", "Created before", { type: "datetime-local", step: 1, value: params.get("before") || "" }),
    h("div", { class: "filter-buttons" },
      h("button", { type: "submit", class: "primary" }, "Apply"),
      h("a", { href: "#/runs", class: "button" }, "Clear")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) next.set(key, String(value));
    location.hash = `#/runs?${next}`;
  });
  return form;
}

function row(run) {
  return h("tr", { dataset: { run: run.identifier } },
    h("td", {}, h("a", { href: `#/runs/${run.identifier}`, class: "mono" }, run.identifier)),
    h("td", {}, run.workflow.identifier, h("span", { class: "muted" }, ` v${run.workflow.version}`)),
    h("td", {}, badge(run.status, run.result)),
    h("td", {}, when(run.createdAt)),
    h("td", {}, duration(run.createdAt, run.completedAt)),
    h("td", {}, run.createdBy));
}

export async function renderRuns(main, params) {
  const offset = Number(params.get("offset") || 0);
  const body = h("tbody");
  const status = h("p", { class: "muted", role: "status", id: "runs-status" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const live = h("span", { class: "live", id: "live-indicator", title: "Updates live" }, "connecting…");
  replace(main,
    h("div", { class: "page-head" }, h("h1", {}, "Runs"), live),
    filtersForm(params),
    h("div", { class: "table-wrap" },
      h("table", { class: "runs", id: "runs-table" },
        h("thead", {}, h("tr", {}, ["Run", "Workflow", "Status", "Created", "Duration", "Created by"].map((t) => h("th", { scope: "col" }, t)))),
        body)),
    status, pager);

  const load = async () => {
    const found = (await api("GET", `/v1/workflows/runs${query(listQuery(params, offset))}`)).workflowRuns;
    replace(body, found.map(row));
    status.textContent = found.length ? `Runs ${offset + 1}–${offset + found.length}` : "No runs match these filters.";
    const page = (to) => { const next = new URLSearchParams(params); next.set("offset", String(to)); return `#/runs?${next}`; };
    replace(pager,
      offset > 0 ? h("a", { class: "button", href: page(Math.max(0, offset - PAGE)), rel: "prev" }, "← Newer") : null,
      found.length === PAGE ? h("a", { class: "button", href: page(offset + PAGE), rel: "next" }, "Older →") : null);
  };
  await load();
  // The workflow suggestions come after the runs: listing every workflow can take a while.
  api("GET", "/v1/workflows").then((body) => {
    const list = main.querySelector("#workflow-ids");
    if (list) replace(list, body.workflows.map((w) => h("option", { value: w.identifier }, w.title || w.identifier)));
  }).catch(() => {});

  // Each event may concern a run on this page or a new one: re-read the page, at most every 300 ms.
  let pending = null;
  const refresh = () => { if (!pending) pending = setTimeout(() => { pending = null; load().catch(() => {}); }, 300); };
  const { limit: _limit, offset: _offset, ...filters } = listQuery(params, offset);
  const subscription = stream(`/v1/workflows/runs/stream${query(filters)}`, {
    // Read the page again once the stream is open: a run started between the first load
    // and the stream's start sends no event this stream sees.
    onOpen: () => { live.textContent = "live"; live.classList.add("on"); refresh(); },
    onEvent: refresh,
    onPoll: () => { live.textContent = "refreshing"; load().catch(() => {}); },
  });
  return () => { subscription.stop(); if (pending) clearTimeout(pending); };
}
