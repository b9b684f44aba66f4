// The API client: the token (sessionStorage, never a URL), JSON calls, SSE over fetch.

const TOKEN = "switchyard.token";
const WHO = "switchyard.who";
const ME = "switchyard.me";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN); },
  get who() { return sessionStorage.getItem(WHO); },
  save(token, who) { sessionStorage.setItem(TOKEN, token); sessionStorage.setItem(WHO, who); },
  clear() { for (const key of [TOKEN, WHO, ME]) sessionStorage.removeItem(key); },
};

// The caller (GET /v1/auth/me), so pages offer only what it may do; the API decides.
export async function whoAmI() {
  const kept = sessionStorage.getItem(ME);
  if (kept) return JSON.parse(kept);
  const body = await api("GET", "/v1/auth/me");
  sessionStorage.setItem(ME, JSON.stringify(body.actor));
  return body.actor;
}

// Cancel and re-run: the run's creator, Admins and machines (SPEC §6).
export function maySteer(me, run) {
  return Boolean(me && (me.privileged || me.name === run.createdBy));
}

// An INPUT node's responders: users by email or client id, roles, teams.
export function mayRespond(me, responders) {
  if (!me || !responders) return false;
  const users = responders.users || [];
  return users.includes(me.name) || users.includes(me.clientId)
    || (responders.roles || []).includes(me.role)
    || (responders.teams || []).some((team) => me.teams.includes(team));
}

export async function signIn(clientId, clientSecret) {
  const response = await fetch("/v1/auth/access_token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ clientId, clientSecret }),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  sessionStorage.removeItem(ME);
  session.save(body.accessToken, clientId);
}

function headers(extra = {}) {
  const all = { ...extra };
  if (session.token) all.Authorization = `Bearer ${session.token}`;
  return all;
}

// A 401 means the token expired or was revoked: back to sign-in.
function unauthorized() {
  session.clear();
  window.dispatchEvent(new Event("switchyard:signed-out"));
}

export async function api(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  const parsed = await response.json().catch(() => null);
  if (response.status === 401) unauthorized();
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) search.append(key, item);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// One SSE message block ("id: 3\ndata: {...}") → {id, event, data}; comments are skipped.
function parseBlock(block) {
  const message = { id: null, event: "message", data: [] };
  for (const line of block.split(/\r?\n/)) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") message.id = value;
    else if (field === "event") message.event = value;
    else if (field === "data") message.data.push(value);
  }
  return message.data.length || message.id !== null ? { ...message, data: message.data.join("\n") } : null;
}

// Reads an SSE stream with fetch (EventSource can't send Authorization), resuming with
// Last-Event-ID after a drop. onEvent(runEvent, receivedAtMs) per data message; onEnd
// when the server says "event: end". Returns {stop(), mode}; mode becomes "poll" when the
// server has no such stream (then onPoll is called every few seconds instead).
export function stream(path, { onEvent, onEnd, onPoll, onOpen }) {
  const state = { stopped: false, lastId: null, mode: "stream", controller: null, timer: null };
  const stop = () => {
    state.stopped = true;
    if (state.controller) state.controller.abort();
    if (state.timer) clearInterval(state.timer);
  };
  const poll = () => {
    state.mode = "poll";
    if (onPoll) state.timer = setInterval(() => !state.stopped && onPoll(), 3000);
  };
  const run = async (delay) => {
    while (!state.stopped) {
      state.controller = new AbortController();
      try {
        const extra = state.lastId === null ? {} : { "Last-Event-ID": state.lastId };
        const response = await fetch(path, { headers: headers({ Accept: "text/event-stream", ...extra }), signal: state.controller.signal });
        if (response.status === 401) return unauthorized();
        if (response.status === 404 || response.status === 405) return poll();
        // A cursor past the stream's cap: start afresh (the page re-reads what it shows).
        if (response.status === 409) { state.lastId = null; if (onOpen) onOpen(); continue; }
        if (!response.ok || !response.body) throw new Error(`stream answered ${response.status}`);
        if (onOpen) onOpen();
        delay = 500;
        if (await read(response.body, state, onEvent)) { if (onEnd) onEnd(); return; }
      } catch (error) {
        if (state.stopped) return;
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10000);
    }
  };
  run(500);
  return { stop, get mode() { return state.mode; } };
}

// true when the stream ended by "event: end", false when the connection just closed.
async function read(body, state, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    buffer += value;
    let cut;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
      const message = parseBlock(block);
      if (!message) continue;
      if (message.id !== null) state.lastId = message.id;
      if (message.event === "end") return true;
      if (message.data) {
        try { onEvent(JSON.parse(message.data), Date.now()); } catch (error) { /* a bad message is skipped */ }
      }
    }
  }
}
