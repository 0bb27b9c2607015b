// Window messages between the page and Clockify (docs/clockify.md#window-messages).
//
// The page asks with the documented `window.top.postMessage(JSON.stringify({action, payload}), "*")`.
// The reply format is not documented; third-party add-ons receive
// `{title: "refreshAddonToken", body: <token>}`, so any of these shapes is accepted, as an
// object or as a JSON string: the token in `body`, `payload`, `token`, `authToken` or
// `auth_token`. Only messages from the parent or top window count, and a token is only
// used after the backend has verified it (auth.js).

export const REFRESH = "refreshAddonToken";
const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const TOKEN_KEYS = ["token", "authToken", "auth_token"];

function jwt(value) {
  return typeof value === "string" && value.length <= 8192 && JWT.test(value) ? value : null;
}

function pick(value) {
  if (typeof value === "string") return jwt(value);
  if (value && typeof value === "object") {
    for (const key of TOKEN_KEYS) if (jwt(value[key])) return value[key];
  }
  return null;
}

/** The new user token a message carries, or null when it carries none or comes from elsewhere. */
export function tokenFromMessage(event) {
  const fromClockify = event.source === window.parent || event.source === window.top;
  // Unframed, parent and top are this window, which also receives its own request.
  if (!fromClockify || event.source === window) return null;
  let data = event.data;
  if (typeof data === "string") {
    try { data = JSON.parse(data); } catch { return null; }
  }
  if (!data || typeof data !== "object") return null;
  const named = [data.title, data.action, data.type, data.name].includes(REFRESH);
  const candidates = TOKEN_KEYS.map((key) => data[key]);
  if (named) candidates.push(data.body, data.payload);
  for (const candidate of candidates) {
    const token = pick(candidate);
    if (token) return token;
  }
  return null;
}

/** Ask Clockify for a fresh user token. */
export function requestToken() {
  try {
    window.top.postMessage(JSON.stringify({ action: REFRESH }), "*");
  } catch {
    // A detached or sandboxed frame cannot post; the caller's timeout handles it.
  }
}

/** Ask, and resolve with the first token that arrives, or null after `timeoutMs`. */
export function askForToken(timeoutMs) {
  return new Promise((resolve) => {
    const done = (token) => {
      window.removeEventListener("message", onMessage);
      clearTimeout(timer);
      resolve(token);
    };
    const onMessage = (event) => {
      const token = tokenFromMessage(event);
      if (token) done(token);
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    window.addEventListener("message", onMessage);
    requestToken();
  });
}
