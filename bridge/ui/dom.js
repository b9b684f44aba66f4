// Small DOM helpers: element creation, a collapsible JSON tree, time formatting.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const SVG = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// A JSON value as nested <details>: objects and arrays collapse, scalars are shown as JSON.
export function jsonTree(value, label = null, open = true) {
  if (value === null || typeof value !== "object") {
    return h("div", { class: "json-leaf" },
      label === null ? null : h("span", { class: "json-key" }, label, ": "),
      h("code", { class: `json-${value === null ? "null" : typeof value}` }, JSON.stringify(value)));
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
  const summary = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
  return h("details", { class: "json", open: open || null },
    h("summary", {}, label === null ? null : h("span", { class: "json-key" }, label, ": "), summary),
    entries.length ? entries.map(([k, v]) => jsonTree(v, k, false)) : h("div", { class: "json-leaf" }, "empty"));
}

export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function duration(start, end) {
  if (!start) return "—";
  const ms = (end ? new Date(end) : new Date()) - new Date(start);
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

// The class a status/result pair is drawn with: running, success, failed, cancelled, cancelling.
export function stateClass(status, result) {
  if (status === "COMPLETED") return (result || "success").toLowerCase();
  if (status === "CANCELLING") return "cancelling";
  return "running";
}

export function badge(status, result) {
  const text = status === "COMPLETED" ? result || "COMPLETED" : status;
  return h("span", { class: `badge ${stateClass(status, result)}` }, text);
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toast");
  const item = h("div", { class: `toast ${kind}` }, message);
  box.append(item);
  setTimeout(() => item.remove(), 6000);
}
