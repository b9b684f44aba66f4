// The web UI's entry: sign-in, the hash router (#/runs, #/runs/<wfr>, #/workflows,
// #/workflows/<id>, #/entities/<blueprint>/<id>) and the page lifecycle.

import { session, signIn, ApiError } from "./api.js";
import { h, replace } from "./dom.js";
import { renderRuns } from "./runs.js";
import { renderRun } from "./run.js";
import { renderWorkflows, renderWorkflow, renderEntity } from "./workflows.js";

const main = document.getElementById("main");
let cleanup = null;
let current = 0;

function renderSignIn(next) {
  const error = h("p", { class: "error", role: "alert", id: "sign-in-error" });
  const form = h("form", { class: "card sign-in", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    h("p", { class: "muted" }, "With a client id and secret from the server's auth file."),
    h("label", { for: "client-id" }, "Client id"),
    h("input", { id: "client-id", name: "clientId", autocomplete: "username", required: true }),
    h("label", { for: "client-secret" }, "Client secret"),
    h("input", { id: "client-secret", name: "clientSecret", type: "password", autocomplete: "current-password", required: true }),
    error,
    h("button", { type: "submit", class: "primary" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    try {
      await signIn(String(data.get("clientId")), String(data.get("clientSecret")));
      location.hash = next && next !== "#/signin" ? next : "#/runs";
      route();
    } catch (failure) {
      error.textContent = failure instanceof ApiError ? failure.message : "The server did not answer.";
    }
  });
  replace(main, form);
  form.querySelector("input").focus();
}

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/runs";
  const [path, search = ""] = raw.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(search) };
}

function pageFor(parts) {
  if (parts[0] === "runs" && parts[1]) return (el, params) => renderRun(el, parts[1], params);
  if (parts[0] === "workflows" && parts[1]) return (el, params) => renderWorkflow(el, parts[1], params);
  if (parts[0] === "workflows") return renderWorkflows;
  if (parts[0] === "entities" && parts[2]) return (el) => renderEntity(el, parts[1], parts[2]);
  return renderRuns;
}

async function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  const nav = document.getElementById("nav");
  if (!session.token) {
    nav.hidden = true;
    renderSignIn(location.hash);
    return;
  }
  nav.hidden = false;
  document.getElementById("who").textContent = session.who || "";
  const { parts, params } = parseHash();
  for (const link of nav.querySelectorAll("a[href^='#']")) {
    link.toggleAttribute("aria-current", link.getAttribute("href") === `#/${parts[0] || "runs"}`);
  }
  // Each page renders into its own element, swapped in only if no later navigation
  // started meanwhile (a slow page must not overwrite the one the user went on to).
  const generation = ++current;
  const page = h("div", { id: "page" });
  replace(main, h("p", { class: "muted" }, "Loading…"));
  try {
    const stop = (await pageFor(parts)(page, params)) || null;
    if (generation !== current) { if (stop) stop(); return; }
    cleanup = stop;
    replace(main, page);
  } catch (failure) {
    if (generation !== current) return;
    replace(main, h("div", { class: "card" }, h("h1", {}, "Could not load this page"),
      h("p", { class: "error", role: "alert" }, failure.message || String(failure))));
  }
}

document.getElementById("sign-out").addEventListener("click", () => {
  session.clear();
  route();
});
window.addEventListener("switchyard:signed-out", () => route());
window.addEventListener("hashchange", () => route());
route();
