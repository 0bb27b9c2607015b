// API Explorer tab: Clockify operations by tag, a form built from the spec, Execute through
// our backend (which holds the installation token), and the recent calls.

import { ApiError, SessionExpired } from "./auth.js";
import { announce, badge, clearError, field, fmtTime, h, pretty, replace, showError, table, uid } from "./dom.js";

const INJECTED = "workspaceId";

/** A JSON value shaped like the schema, as a starting point for a request body. */
export function skeleton(schema, depth = 0) {
  if (!schema || typeof schema !== "object" || depth > 3) return null;
  if (schema.example !== undefined) return schema.example;
  if (schema.default !== undefined) return schema.default;
  if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[0];
  const type = schema.type || (schema.properties ? "object" : undefined);
  if (type === "object") {
    const out = {};
    for (const [name, prop] of Object.entries(schema.properties || {})) out[name] = skeleton(prop, depth + 1);
    return out;
  }
  if (type === "array") return [];
  if (type === "integer" || type === "number") return 0;
  if (type === "boolean") return false;
  if (type === "string") return schema.format === "date-time" ? new Date().toISOString().replace(/\.\d+Z$/, "Z") : "";
  return null;
}

function paramControl(param) {
  const schema = param.schema || {};
  const type = schema.type || (schema.items ? "array" : "string");
  let control;
  if (Array.isArray(schema.enum)) {
    control = h("select", {}, h("option", { value: "" }, "(not set)"), schema.enum.map((v) => h("option", { value: String(v) }, String(v))));
  } else if (type === "boolean") {
    control = h("select", {}, h("option", { value: "" }, "(not set)"), h("option", { value: "true" }, "true"), h("option", { value: "false" }, "false"));
  } else if (type === "integer" || type === "number") {
    control = h("input", { type: "number", inputmode: "numeric", step: type === "integer" ? "1" : "any",
      min: schema.minimum, max: schema.maximum, placeholder: schema.default !== undefined ? String(schema.default) : undefined });
  } else {
    control = h("input", { type: "text", autocomplete: "off", spellcheck: "false",
      placeholder: type === "array" ? "comma-separated" : schema.format === "date-time" ? "2025-01-31T00:00:00Z" : undefined });
  }
  control.dataset.kind = type;
  control.dataset.name = param.name;
  if (param.required) control.required = true;
  return control;
}

function readControl(control) {
  const raw = control.value.trim();
  if (raw === "") return undefined;
  switch (control.dataset.kind) {
    case "integer":
    case "number": return Number(raw);
    case "boolean": return raw === "true";
    case "array": return raw.split(",").map((s) => s.trim()).filter(Boolean);
    default: return raw;
  }
}

export class ExplorerTab {
  constructor(panel, ctx) {
    this.panel = panel;
    this.ctx = ctx;
    this.operations = null;
    this.current = null;
    this.search = h("input", { type: "search", autocomplete: "off", placeholder: "getProjects, tags, /time-entries…" });
    this.tagFilter = h("select", {}, h("option", { value: "" }, "All tags"));
    this.list = h("div", { class: "op-list" });
    this.count = h("p", { class: "muted", "aria-live": "polite" });
    this.form = h("section", { class: "op-form", "aria-labelledby": "op-title" });
    this.historyBody = h("div", {});
    this.search.addEventListener("input", () => this.renderList());
    this.tagFilter.addEventListener("change", () => this.renderList());
    replace(panel,
      h("h2", {}, "API Explorer"),
      h("p", { class: "muted" }, "Calls go through this add-on with its installation token, which never reaches your browser."),
      h("div", { class: "filters" }, field("Search operations", this.search).field, field("Tag", this.tagFilter).field),
      this.count, this.list, this.form,
      h("section", { "aria-labelledby": "hist-title" },
        h("div", { class: "toolbar" }, h("h3", { id: "hist-title" }, "Recent calls"),
          h("button", { type: "button", onclick: () => this.loadHistory(true) }, "Refresh history")),
        this.historyBody));
  }

  async activate() {
    if (!this.operations) {
      try {
        this.operations = await this.ctx.api("/api/explorer/operations");
      } catch (error) {
        if (!(error instanceof SessionExpired)) showError(`Could not load the operations: ${error.message}`);
        return;
      }
      const tags = [...new Set(this.operations.map((o) => o.tag))].sort();
      replace(this.tagFilter, h("option", { value: "" }, "All tags"), tags.map((t) => h("option", { value: t }, t)));
      this.renderList();
    }
    this.loadHistory(false);
  }

  deactivate() {}

  reset() {
    this.operations = null;
    this.current = null;
    replace(this.list);
    replace(this.form);
    replace(this.historyBody);
    this.count.textContent = "";
  }

  renderList() {
    // Typing before the operations arrive: activate() renders with the search once they do.
    if (!this.operations) return;
    const needle = this.search.value.trim().toLowerCase();
    const tag = this.tagFilter.value;
    const matches = this.operations.filter((o) => (!tag || o.tag === tag)
      && (!needle || `${o.operation_id} ${o.path} ${o.summary} ${o.tag} ${o.method}`.toLowerCase().includes(needle)));
    const groups = new Map();
    for (const op of matches) {
      if (!groups.has(op.tag)) groups.set(op.tag, []);
      groups.get(op.tag).push(op);
    }
    this.count.textContent = `${matches.length} operation${matches.length === 1 ? "" : "s"}`;
    const open = Boolean(needle || tag) || groups.size <= 2;
    replace(this.list, [...groups.entries()].map(([name, ops]) => h("details", { open },
      h("summary", {}, `${name} (${ops.length})`),
      h("ul", { class: "ops" }, ops.map((op) => h("li", {},
        h("button", {
          type: "button", class: `op${op.allowed ? "" : " not-allowed"}`, "data-operation": op.operation_id,
          "aria-describedby": op.allowed ? undefined : `why-${op.operation_id}`,
          onclick: () => this.select(op.operation_id),
        }, h("span", { class: `method m-${op.method.toLowerCase()}` }, op.method), " ",
        h("span", { class: "op-id" }, op.operation_id), h("span", { class: "op-path" }, op.path)),
        op.allowed ? null : h("small", { class: "reason", id: `why-${op.operation_id}` }, "Not allowed: ", op.reason)))))));
  }

  async select(operationId) {
    let op;
    try {
      op = await this.ctx.api(`/api/explorer/operations/${encodeURIComponent(operationId)}`);
    } catch (error) {
      if (!(error instanceof SessionExpired)) showError(`Could not load ${operationId}: ${error.message}`);
      return;
    }
    this.current = op;
    this.renderForm(op);
    const title = document.getElementById("op-title");
    title.focus();
  }

  renderForm(op) {
    const pathParams = op.parameters.filter((p) => p.location === "path");
    const queryParams = op.parameters.filter((p) => p.location === "query");
    const optional = queryParams.filter((p) => !p.required);
    const controls = [];
    const paramField = (p) => {
      if (p.name === INJECTED) {
        return field(p.name, h("input", { type: "text", readonly: "readonly", value: this.ctx.session().workspace_id }),
          "Always your workspace; the backend sets it").field;
      }
      const control = paramControl(p);
      control.dataset.location = p.location;
      controls.push(control);
      const hint = [p.description, p.schema?.type && `type ${p.schema.type}`].filter(Boolean).join(" · ");
      return field(`${p.name}${p.required ? " (required)" : ""}`, control, hint ? hint.slice(0, 200) : undefined).field;
    };
    let body = null;
    if (op.request_body) {
      body = h("textarea", { rows: "10", spellcheck: "false", class: "code" });
      body.value = JSON.stringify(skeleton(op.request_body), null, 2);
    }
    const result = h("div", { class: "result", id: "op-result" });
    const execute = h("button", { type: "submit", class: "primary", disabled: !op.allowed }, "Execute");
    const formEl = h("form", { novalidate: "novalidate" },
      pathParams.length ? h("fieldset", {}, h("legend", {}, "Path parameters"), pathParams.map(paramField)) : null,
      queryParams.length ? h("fieldset", {}, h("legend", {}, "Query parameters"),
        queryParams.filter((p) => p.required).map(paramField),
        optional.length ? h("details", { open: optional.length <= 4 }, h("summary", {}, `Optional query parameters (${optional.length})`),
          optional.map(paramField)) : null) : null,
      body ? field(`Request body (JSON)${op.request_body_required ? ", required" : ""}`, body,
        "Prefilled from the schema; remove what you do not send").field : null,
      h("div", { class: "actions" }, execute));
    formEl.addEventListener("submit", (event) => {
      event.preventDefault();
      if (op.allowed) this.execute(op, controls, body, result, execute);
    });
    replace(this.form,
      h("h3", { id: "op-title", tabindex: "-1" }, h("span", { class: `method m-${op.method.toLowerCase()}` }, op.method), " ", op.operation_id),
      h("p", { class: "op-path" }, h("code", {}, op.path)),
      op.summary ? h("p", {}, op.summary) : null,
      op.required_scope ? h("p", { class: "muted" }, `Needs scope ${op.required_scope}`) : null,
      op.allowed ? null : h("p", { class: "banner warn", id: "op-refused" }, "Not allowed here: ", op.reason),
      formEl, result);
  }

  async execute(op, controls, bodyEl, resultEl, button) {
    clearError();
    const request = { operationId: op.operation_id, pathParams: {}, query: {} };
    for (const control of controls) {
      const value = readControl(control);
      if (value === undefined) continue;
      if (control.dataset.location === "path") request.pathParams[control.dataset.name] = String(value);
      else request.query[control.dataset.name] = value;
    }
    if (bodyEl && bodyEl.value.trim()) {
      try {
        request.body = JSON.parse(bodyEl.value);
        bodyEl.removeAttribute("aria-invalid");
      } catch (error) {
        bodyEl.setAttribute("aria-invalid", "true");
        showError(`The request body is not valid JSON: ${error.message}`);
        bodyEl.focus();
        return;
      }
    }
    button.disabled = true;
    replace(resultEl, h("p", { class: "muted" }, "Calling Clockify…"));
    try {
      const r = await this.ctx.api("/api/explorer/execute", { method: "POST", body: request });
      this.renderResult(resultEl, r);
      announce(`${r.method} ${r.operation_id}: HTTP ${r.status} in ${r.duration_ms} ms`);
    } catch (error) {
      if (error instanceof SessionExpired) return;
      replace(resultEl);
      const details = error instanceof ApiError ? error.details : [];
      showError(`${op.operation_id} was refused: ${error.message}`, details);
    } finally {
      button.disabled = false;
      this.loadHistory(false);
    }
  }

  renderResult(el, r) {
    const tone = r.status < 300 ? "ok" : r.status < 500 ? "warn" : "bad";
    const headingId = uid("res");
    replace(el,
      h("h4", { id: headingId }, "Response ", badge(`HTTP ${r.status}`, tone), " ", h("span", { class: "muted" }, `${r.duration_ms} ms`)),
      h("p", { class: "op-path" }, h("code", {}, `${r.method} ${r.path}`)),
      h("details", {}, h("summary", {}, `Headers (${Object.keys(r.headers).length})`),
        h("dl", { class: "pairs" }, Object.entries(r.headers).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))),
      r.truncated ? h("p", { class: "banner warn" }, "The body was cut to keep the page fast.") : null,
      h("pre", { class: "code body", tabindex: "0", "aria-labelledby": headingId }, pretty(r.body)));
  }

  async loadHistory(manual) {
    let rows;
    try {
      rows = await this.ctx.api("/api/explorer/history", { query: { limit: 20 } });
    } catch (error) {
      if (!(error instanceof SessionExpired)) showError(`Could not load the call history: ${error.message}`);
      return;
    }
    replace(this.historyBody, rows.length
      ? table("Recent calls", ["When", "Call", "Status", "Time", "From"], rows.map((c) => h("tr", {},
        h("td", {}, fmtTime(c.created_at)),
        h("td", {}, h("code", {}, c.operation_id || `${c.method} ${c.path}`)),
        h("td", {}, c.status ? badge(String(c.status), c.status < 300 ? "ok" : c.status < 500 ? "warn" : "bad") : badge("error", "bad"),
          c.error ? h("div", { class: "error-text" }, c.error) : null),
        h("td", {}, c.duration_ms !== null ? `${c.duration_ms} ms` : "—"),
        h("td", {}, c.source))))
      : h("p", { class: "muted" }, "No calls yet."));
    if (manual) announce("History refreshed");
  }
}
