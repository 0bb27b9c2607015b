// Small DOM helpers. Everything is built with createElement and text nodes, never parsed HTML,
// so no value from Clockify, a flow or an event can become markup.

let counter = 0;

/** A unique element id with a readable prefix. */
export function uid(prefix = "id") {
  counter += 1;
  return `${prefix}-${counter}`;
}

/**
 * h("button", {class: "primary", onclick: fn, "aria-label": "x"}, "text", child)
 * Attributes: `class`, `text`, `on<event>` (listeners), booleans (`hidden`, `disabled`,
 * `checked`, `selected`, `required`, `multiple`), `value`, and anything else as an attribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (["checked", "selected", "disabled", "hidden", "required", "multiple", "open"].includes(key)) el[key] = true;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A labelled form control: returns {field, control}. */
export function field(label, control, hint) {
  const id = control.id || uid("f");
  control.id = id;
  const parts = [h("label", { for: id }, label), control];
  if (hint) {
    const hintId = uid("hint");
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("small", { id: hintId, class: "hint" }, hint));
  }
  return { field: h("div", { class: "field" }, parts), control };
}

const live = () => document.getElementById("live");
const alertBox = () => document.getElementById("alert");

/** Say something to screen readers (polite). */
export function announce(message) {
  const region = live();
  if (!region) return;
  region.textContent = "";
  // A new text node after a tick is announced even when the text repeats.
  setTimeout(() => { region.textContent = message; }, 30);
}

/** A visible error banner that is also announced (role=alert). */
export function showError(message, details = []) {
  const box = alertBox();
  if (!box) return;
  replace(box, h("p", {}, message), details.length ? h("ul", {}, details.map((d) => h("li", {}, d))) : null,
    h("button", { type: "button", class: "link", onclick: clearError }, "Dismiss"));
  box.hidden = false;
}

export function clearError() {
  const box = alertBox();
  if (box) { box.hidden = true; box.replaceChildren(); }
}

export function fmtTime(value) {
  if (!value) return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function fmtSeconds(seconds) {
  if (seconds === undefined || seconds === null || Number.isNaN(Number(seconds))) return "—";
  const s = Math.round(Number(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function pretty(value) {
  if (typeof value === "string") return value;
  try { return JSON.stringify(value, null, 2); } catch { return String(value); }
}

/** A status word with a colour class (ok, warn, bad, neutral) and the word itself, never colour alone. */
export function badge(text, tone = "neutral") {
  return h("span", { class: `badge ${tone}` }, text);
}

export function toneOf(status) {
  const s = String(status).toUpperCase();
  if (["ACTIVE", "DONE", "SUCCEEDED", "STOPPED", "OK", "ENABLED", "MATCHED"].includes(s)) return "ok";
  if (["FAILED", "DEAD", "DELETED", "CONDITION_ERROR", "ERROR", "REFUSED"].includes(s)) return "bad";
  if (["RUNNING", "QUEUED", "PENDING", "PROCESSING", "INACTIVE", "RATE_LIMITED", "LOOP_BLOCKED", "SKIPPED",
       "DISABLED", "CANCELLED"].includes(s)) return "warn";
  return "neutral";
}

/** A horizontally scrollable wrapper, so wide tables never widen the sidebar. */
export function scroller(child, label) {
  return h("div", { class: "scroll", role: "region", tabindex: "0", "aria-label": label }, child);
}

export function table(caption, headers, rows) {
  return scroller(h("table", {},
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows)), caption);
}
