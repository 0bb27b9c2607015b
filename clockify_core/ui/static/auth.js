// The user token: read once from the URL, then held in memory only and sent in a header.
//
// It is refreshed `refresh_before_seconds` before `exp` (server clock) through Clockify's
// refreshAddonToken message; a new token is used only after GET /api/session verified it
// for the same workspace, installation and user. A 401 triggers one refresh and one retry,
// then the session-expired state, which hides every panel until a new token arrives.

import { askForToken } from "./clockify.js";
import { announce } from "./dom.js";

const WAIT_MS = 8000;
const RETRY_MS = 30000;

const state = {
  token: null,
  session: null,
  skew: 0,
  base: "",
  timer: null,
  refreshing: null,
  expired: false,
  onExpired: () => {},
  onRenewed: () => {},
};

export class SessionExpired extends Error {
  constructor() { super("The session has expired"); this.name = "SessionExpired"; }
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem || {};
  }

  /** "location: message" lines of a 422/403 problem (flows, explorer). */
  get details() {
    const errors = Array.isArray(this.problem.errors) ? this.problem.errors : [];
    return errors.map((e) => (e.location ? `${e.location}: ${e.message || e.msg || ""}` : String(e.message || e.msg || JSON.stringify(e))));
  }
}

export function session() { return state.session; }

/** Take the token out of the URL (and history) and keep it in memory. */
export function takeTokenFromUrl() {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("auth_token");
  if (token !== null) {
    url.searchParams.delete("auth_token");
    window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
  }
  return token;
}

export function start({ token, session: initial, base, onExpired, onRenewed }) {
  state.token = token;
  state.base = base;
  state.onExpired = onExpired;
  state.onRenewed = onRenewed;
  adopt(initial);
}

function adopt(next) {
  state.session = next;
  state.skew = next.server_time - Date.now() / 1000;
  schedule((next.expires_at - next.refresh_before_seconds - serverNow()) * 1000);
}

function serverNow() { return Date.now() / 1000 + state.skew; }

function schedule(delayMs) {
  clearTimeout(state.timer);
  state.timer = setTimeout(async () => {
    if (await refresh()) return;
    if (serverNow() < state.session.expires_at) schedule(Math.min(RETRY_MS, (state.session.expires_at - serverNow()) * 1000));
    else expire();
  }, Math.max(0, delayMs));
}

/** One refresh at a time; resolves true when a verified new token is in use, false otherwise (never rejects,
 * so the refresh timer chain always goes on and ends in the expired state at worst). */
export function refresh() {
  if (!state.refreshing) {
    state.refreshing = renew()
      .catch(() => false)
      .finally(() => { state.refreshing = null; });
  }
  return state.refreshing;
}

async function renew() {
  const token = await askForToken(WAIT_MS);
  if (!token || token === state.token) return false;
  let response;
  try {
    response = await fetch(`${state.base}/api/session`, { headers: { "X-Addon-Token": token }, cache: "no-store" });
  } catch {
    return false;
  }
  if (!response.ok) return false;
  let next;
  try {
    next = await response.json();
  } catch {
    return false; // a proxy's error page, a cut-off body: no verified session, so no new token
  }
  const current = state.session;
  if (!next || next.workspace_id !== current.workspace_id || next.addon_id !== current.addon_id || next.user_id !== current.user_id) {
    return false;
  }
  state.token = token;
  adopt(next);
  if (state.expired) {
    state.expired = false;
    state.onRenewed();
  }
  announce("Session renewed");
  return true;
}

function expire() {
  if (state.expired) return;
  state.expired = true;
  clearTimeout(state.timer);
  state.onExpired();
}

function send(path, { method = "GET", body, query } = {}) {
  const url = new URL(state.base + path, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  const headers = { "X-Addon-Token": state.token, Accept: "application/json" };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch(url, init);
}

/** Call our backend with the token; throws ApiError (with the problem body) or SessionExpired. */
export async function api(path, options = {}) {
  if (state.expired) throw new SessionExpired();
  let response = await send(path, options);
  if (response.status === 401) {
    // The route refused before doing anything, so repeating the request is safe.
    if (await refresh()) response = await send(path, options);
    if (response.status === 401) {
      expire();
      throw new SessionExpired();
    }
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { detail: text.slice(0, 300) }; }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Called by the expired panel's button. */
export async function retryAfterExpiry() {
  return refresh();
}
