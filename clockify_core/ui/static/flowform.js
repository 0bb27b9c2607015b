// The flow editor: a form for trigger, conditions and actions over one flow document, and a
// raw JSON mode over the same document (so switching round-trips every field, also ones the
// form does not show); the dry run below it is dryrun.js (docs/flows.md).

import { ApiError, SessionExpired } from "./auth.js";
import { announce, clearError, field, h, replace, showError, uid } from "./dom.js";
import { DryRunPanel } from "./dryrun.js";

export const OPERATORS = ["eq", "ne", "gt", "gte", "lt", "lte", "contains", "in", "exists", "regex"];
const AS_TYPES = ["", "duration", "datetime", "number", "string"];
const HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];
const FIELDS = ["name", "enabled", "trigger", "conditions", "actions", "max_runs_per_minute", "record_unmatched"];

export function blankFlow() {
  return { name: "", enabled: true, trigger: { events: [] }, conditions: null, actions: [], max_runs_per_minute: 60, record_unmatched: false };
}

function editable(flow) {
  const doc = {};
  for (const key of FIELDS) if (flow[key] !== undefined) doc[key] = flow[key];
  return structuredClone(doc);
}

function isLeaf(c) {
  return Boolean(c) && typeof c === "object" && !Array.isArray(c) && typeof c.path === "string"
    && !("all" in c) && !("any" in c) && !("not" in c);
}

/** The rows view of conditions, or null when they nest deeper than the rows can show. */
export function conditionRows(conditions) {
  if (conditions === null || conditions === undefined) return { mode: "none", rows: [] };
  if (isLeaf(conditions)) return { mode: "all", rows: [conditions] };
  if (typeof conditions === "object" && Object.keys(conditions).length === 1) {
    for (const mode of ["all", "any"]) {
      if (Array.isArray(conditions[mode]) && conditions[mode].every(isLeaf)) return { mode, rows: conditions[mode] };
    }
  }
  return null;
}

function parseValue(text, row) {
  if (row.as === "string") return text;
  try { return JSON.parse(text); } catch { return text; }
}

function showValue(value, row) {
  if (value === undefined) return "";
  if (typeof value === "string") {
    if (row.as === "string") return value;
    try { JSON.parse(value); return JSON.stringify(value); } catch { return value; }
  }
  return JSON.stringify(value);
}

function checkbox(label, checked, onChange) {
  const input = h("input", { type: "checkbox", checked });
  input.addEventListener("change", () => onChange(input.checked));
  const id = uid("cb");
  input.id = id;
  return h("div", { class: "check" }, input, h("label", { for: id }, label));
}

export class FlowEditor {
  constructor(ctx, { flow, onDone }) {
    this.ctx = ctx;
    this.flow = flow || null;
    this.doc = flow ? editable(flow) : blankFlow();
    this.onDone = onDone;
    this.mode = "form";
    this.raw = new WeakMap(); // object -> Map(key -> text) of JSON textareas, valid or not
    this.operations = null;
    this.sources = null;
    this.recent = [];
    this.body = h("div", { class: "editor-body" });
    this.element = this.build();
    this.renderBody();
  }

  get session() { return this.ctx.session(); }

  build() {
    const title = this.flow ? `Edit flow “${this.flow.name}”` : "New flow";
    const group = uid("editor-mode");
    const modes = h("fieldset", { class: "mode" }, h("legend", {}, "Edit as"),
      ["form", "json"].map((mode) => {
        const id = uid("mode");
        const input = h("input", { type: "radio", name: group, id, value: mode, checked: mode === this.mode });
        input.addEventListener("change", () => this.switchMode(mode, input));
        return h("span", { class: "check" }, input, h("label", { for: id }, mode === "form" ? "Form" : "JSON"));
      }));
    this.modeInputs = modes.querySelectorAll("input");
    const save = h("button", { type: "button", class: "primary", onclick: () => this.save() }, "Save flow");
    const cancel = h("button", { type: "button", onclick: () => this.onDone(null) }, "Back to flows");
    return h("div", { class: "editor" },
      h("h2", { id: "editor-title", tabindex: "-1" }, title),
      modes, this.body, h("div", { class: "actions" }, save, cancel),
      new DryRunPanel(this.ctx, () => this.definition()).element);
  }

  // ---- mode switching -------------------------------------------------------------------

  switchMode(mode, input) {
    if (mode === this.mode) return;
    clearError();
    if (mode === "json") {
      const problems = this.problems();
      if (problems.length) {
        showError("Fix these fields before switching to JSON:", problems);
        this.modeInputs.forEach((i) => { i.checked = i.value === "form"; });
        return;
      }
    } else if (!this.readJson()) {
      this.modeInputs.forEach((i) => { i.checked = i.value === "json"; });
      return;
    }
    this.mode = mode;
    this.renderBody();
    input.focus();
  }

  /** JSON mode: take the textarea into the document; false (with an error shown) when invalid. */
  readJson() {
    let parsed;
    try {
      parsed = JSON.parse(this.jsonArea.value);
    } catch (error) {
      this.jsonArea.setAttribute("aria-invalid", "true");
      showError(`The flow is not valid JSON: ${error.message}`);
      this.jsonArea.focus();
      return false;
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
      showError("The flow must be a JSON object");
      return false;
    }
    this.jsonArea.removeAttribute("aria-invalid");
    this.doc = parsed;
    this.raw = new WeakMap();
    return true;
  }

  /** JSON textareas of the form that do not parse. */
  problems() {
    const out = [];
    const check = (owner, label) => {
      for (const [key, text] of this.raw.get(owner) || []) {
        if (!text.trim()) continue;
        try { JSON.parse(text); } catch (error) { out.push(`${label} ${key}: ${error.message}`); }
      }
    };
    check(this.doc, "Flow");
    (this.doc.actions || []).forEach((action, i) => check(action, `Action ${i + 1}`));
    return out;
  }

  renderBody() {
    if (this.mode === "json") {
      this.jsonArea = h("textarea", { rows: "24", spellcheck: "false", class: "code" });
      this.jsonArea.value = JSON.stringify(this.doc, null, 2);
      replace(this.body, field("Flow definition (JSON)", this.jsonArea, "The document POST /api/flows takes; see docs/flows.md").field);
      return;
    }
    this.triggerBox = h("fieldset", { class: "trigger" });
    this.conditionsBox = h("fieldset", { class: "conditions" });
    this.actionsBox = h("fieldset", { class: "flow-actions" });
    replace(this.body, this.basics(), this.triggerBox, this.conditionsBox, this.actionsBox);
    this.renderTrigger();
    this.renderConditions();
    this.renderActions();
  }

  // ---- JSON textareas of the form -------------------------------------------------------

  jsonField(owner, key, label, hint, rows = 3) {
    const area = h("textarea", { rows: String(rows), spellcheck: "false", class: "code" });
    const stored = this.raw.get(owner)?.get(key);
    area.value = stored !== undefined ? stored : owner[key] === undefined ? "" : JSON.stringify(owner[key], null, 2);
    area.addEventListener("input", () => {
      if (!this.raw.has(owner)) this.raw.set(owner, new Map());
      this.raw.get(owner).set(key, area.value);
      if (!area.value.trim()) {
        delete owner[key];
        area.removeAttribute("aria-invalid");
        return;
      }
      try {
        owner[key] = JSON.parse(area.value);
        area.removeAttribute("aria-invalid");
      } catch {
        area.setAttribute("aria-invalid", "true");
      }
    });
    return field(label, area, hint).field;
  }

  textField(owner, key, label, { hint, type = "text", list, id } = {}) {
    // The id is given here, before field() writes the label's `for`: changed afterwards, the
    // label would point at an element that no longer exists.
    const input = h("input", { type, autocomplete: "off", spellcheck: "false", list, id });
    if (owner[key] !== undefined) input.value = String(owner[key]);
    input.addEventListener("input", () => {
      const value = input.value;
      if (value === "") delete owner[key];
      else owner[key] = type === "number" ? Number(value) : value;
    });
    return field(label, input, hint);
  }

  selectField(owner, key, label, options, { fallback, onChange } = {}) {
    const current = owner[key] ?? fallback;
    const values = current !== undefined && !options.includes(current) ? [current, ...options] : options;
    const select = h("select", {}, values.map((v) => h("option", { value: v, selected: v === current }, v === "" ? "(none)" : v)));
    select.addEventListener("change", () => {
      if (select.value === "") delete owner[key];
      else owner[key] = select.value;
      if (onChange) onChange(select.value);
    });
    return field(label, select);
  }

  // ---- sections --------------------------------------------------------------------------

  basics() {
    const name = this.textField(this.doc, "name", "Name");
    name.control.required = true;
    name.control.maxLength = 200;
    const runs = this.textField(this.doc, "max_runs_per_minute", "Most runs per minute", { type: "number",
      hint: "Matches beyond this are recorded as RATE_LIMITED, not executed" });
    runs.control.min = "1";
    return h("fieldset", {}, h("legend", {}, "Flow"), name.field,
      checkbox("Enabled", this.doc.enabled !== false, (v) => { this.doc.enabled = v; }),
      runs.field,
      checkbox("Also record events that do not match (debugging)", Boolean(this.doc.record_unmatched),
        (v) => { this.doc.record_unmatched = v; }));
  }

  renderTrigger() {
    const features = this.session.service;
    const trigger = this.doc.trigger && typeof this.doc.trigger === "object" ? this.doc.trigger : (this.doc.trigger = { events: [] });
    const custom = "custom_source" in trigger;
    const parts = [h("legend", {}, "Trigger")];
    if (features.custom_webhooks) {
      const name = uid("trigger-kind");
      const kinds = [["clockify", "Clockify events"], ["custom", "A custom webhook source"]].map(([value, label]) => {
        const id = uid("tk");
        const input = h("input", { type: "radio", name, id, value, checked: (value === "custom") === custom });
        input.addEventListener("change", () => {
          this.doc.trigger = value === "custom" ? { custom_source: "", events: [] } : { events: [] };
          this.renderTrigger();
          this.triggerBox.querySelector(`input[value="${value}"]`).focus();
        });
        return h("span", { class: "check" }, input, h("label", { for: id }, label));
      });
      parts.push(h("div", { role: "radiogroup", "aria-label": "Trigger on", class: "inline" }, kinds));
    }
    if (custom) {
      const select = h("select", {}, h("option", { value: "" }, "(choose a source)"));
      const fill = () => {
        const sources = this.sources || [];
        const known = sources.some((s) => s.id === trigger.custom_source);
        replace(select, h("option", { value: "" }, sources.length ? "(choose a source)" : "(no sources yet)"),
          !known && trigger.custom_source ? h("option", { value: trigger.custom_source, selected: true }, trigger.custom_source) : null,
          sources.map((s) => h("option", { value: s.id, selected: s.id === trigger.custom_source }, `${s.name} (${s.id})`)));
      };
      select.addEventListener("change", () => { trigger.custom_source = select.value; });
      fill();
      if (!this.sources) this.loadSources().then(fill);
      const types = h("input", { type: "text", autocomplete: "off", value: (trigger.events || []).join(", ") });
      types.addEventListener("input", () => {
        trigger.events = types.value.split(",").map((s) => s.trim()).filter(Boolean);
      });
      parts.push(field("Source", select).field,
        field("Event types (X-Event-Type)", types, "Comma-separated; leave empty for any").field);
    } else {
      const chosen = new Set(trigger.events || []);
      const counter = h("p", { class: "muted", "aria-live": "polite" }, `${chosen.size} selected`);
      const filter = h("input", { type: "search", autocomplete: "off", placeholder: "Filter events" });
      const legendId = uid("ev");
      const boxes = [...new Set([...features.events, ...chosen])].map((event) => {
        const id = uid("ev");
        const input = h("input", { type: "checkbox", id, value: event, checked: chosen.has(event) });
        input.addEventListener("change", () => {
          const events = new Set(trigger.events || []);
          if (input.checked) events.add(event); else events.delete(event);
          trigger.events = features.events.filter((e) => events.has(e)).concat([...events].filter((e) => !features.events.includes(e)));
          counter.textContent = `${trigger.events.length} selected`;
        });
        return h("div", { class: "check", "data-event": event }, input, h("label", { for: id }, event));
      });
      filter.addEventListener("input", () => {
        const needle = filter.value.trim().toUpperCase();
        for (const box of boxes) box.hidden = Boolean(needle) && !box.dataset.event.includes(needle);
      });
      parts.push(field("Filter events", filter).field,
        h("div", { class: "event-list", role: "group", "aria-labelledby": legendId },
          h("span", { id: legendId, class: "visually-hidden" }, "Events that start the flow"), boxes), counter);
    }
    replace(this.triggerBox, parts);
  }

  renderConditions(focusId) {
    const view = conditionRows(this.doc.conditions);
    const parts = [h("legend", {}, "Conditions")];
    if (!view) {
      parts.push(h("p", { class: "muted" }, "These conditions nest groups; edit them as JSON (or switch the whole flow to JSON)."),
        this.jsonField(this.doc, "conditions", "Conditions (JSON)", "A leaf, or an all/any/not group", 8));
      replace(this.conditionsBox, parts);
      return;
    }
    const rows = view.rows;
    let mode = view.mode;
    const write = () => {
      this.doc.conditions = mode === "none" && !rows.length ? null : { [mode === "none" ? "all" : mode]: rows };
    };
    const modeSelect = h("select", { id: "cond-mode" },
      [["none", "Always (no conditions)"], ["all", "All of these hold"], ["any", "Any of these holds"]].map(([value, label]) =>
        h("option", { value, selected: value === (rows.length ? (mode === "none" ? "all" : mode) : "none") }, label)));
    modeSelect.addEventListener("change", () => {
      mode = modeSelect.value;
      if (mode === "none") rows.length = 0;
      else if (!rows.length) rows.push({ path: "$.", op: "eq", value: "" });
      write();
      this.renderConditions("cond-mode");
    });
    parts.push(field("Run when", modeSelect).field);
    rows.forEach((row, i) => parts.push(this.conditionRow(row, i, rows, write)));
    if (rows.length) {
      parts.push(h("button", { type: "button", id: "cond-add", onclick: () => {
        rows.push({ path: "$.", op: "eq", value: "" });
        write();
        this.renderConditions(`cond-${rows.length - 1}-path`);
      } }, "Add condition"));
    }
    replace(this.conditionsBox, parts);
    if (focusId) document.getElementById(focusId)?.focus();
  }

  conditionRow(row, i, rows, write) {
    const path = h("input", { type: "text", id: `cond-${i}-path`, spellcheck: "false", autocomplete: "off", value: row.path || "" });
    path.addEventListener("input", () => { row.path = path.value; write(); });
    const op = h("select", { id: `cond-${i}-op` }, OPERATORS.concat(OPERATORS.includes(row.op) ? [] : [row.op]).map((o) =>
      h("option", { value: o, selected: o === row.op }, o)));
    op.addEventListener("change", () => {
      row.op = op.value;
      if (row.op === "exists") row.value = true;
      write();
      this.renderConditions(`cond-${i}-op`);
    });
    let value;
    if (row.op === "exists") {
      value = h("select", { id: `cond-${i}-value` }, h("option", { value: "true", selected: row.value !== false }, "is present"),
        h("option", { value: "false", selected: row.value === false }, "is missing or null"));
      value.addEventListener("change", () => { row.value = value.value === "true"; write(); });
    } else {
      value = h("input", { type: "text", id: `cond-${i}-value`, spellcheck: "false", autocomplete: "off", value: showValue(row.value, row) });
      value.addEventListener("input", () => { row.value = parseValue(value.value, row); write(); });
    }
    const as = h("select", { id: `cond-${i}-as` }, AS_TYPES.map((t) => h("option", { value: t, selected: (row.as || "") === t }, t || "(as is)")));
    as.addEventListener("change", () => {
      if (as.value) row.as = as.value; else delete row.as;
      write();
    });
    const remove = h("button", { type: "button", class: "link", onclick: () => {
      rows.splice(i, 1);
      write();
      this.renderConditions(rows.length ? `cond-${Math.max(0, i - 1)}-path` : "cond-mode");
    } }, `Remove condition ${i + 1}`);
    return h("fieldset", { class: "row" }, h("legend", {}, `Condition ${i + 1}`),
      field("Path", path, i === 0 ? "JSONPath into the event, e.g. $.billable or $.timeInterval.duration" : undefined).field,
      field("Operator", op).field,
      field("Value", value, row.op === "exists" ? undefined : "JSON (true, 12, [\"a\"]) or plain text").field,
      field("Compare as", as).field,
      checkbox("Ignore case", Boolean(row.ignore_case), (v) => { if (v) row.ignore_case = true; else delete row.ignore_case; write(); }),
      remove);
  }

  renderActions(focusId) {
    const actions = Array.isArray(this.doc.actions) ? this.doc.actions : (this.doc.actions = []);
    const allowed = this.session.service.flow_actions;
    const parts = [h("legend", {}, "Actions")];
    if (!actions.length) parts.push(h("p", { class: "muted" }, "No actions yet: a matching event is only recorded."));
    actions.forEach((action, i) => parts.push(this.actionCard(action, i, actions, allowed)));
    const newType = h("select", { id: "action-new-type" }, allowed.map((t) => h("option", { value: t }, t)));
    parts.push(h("div", { class: "inline" }, field("New action type", newType).field,
      h("button", { type: "button", id: "action-add", onclick: () => {
        actions.push({ type: newType.value });
        this.renderActions(`action-${actions.length - 1}-type`);
      } }, "Add action")));
    replace(this.actionsBox, parts);
    if (focusId) document.getElementById(focusId)?.focus();
  }

  actionCard(action, i, actions, allowed) {
    const types = allowed.includes(action.type) ? allowed : [action.type, ...allowed];
    const type = h("select", { id: `action-${i}-type` }, types.map((t) => h("option", { value: t, selected: t === action.type }, t)));
    type.addEventListener("change", () => {
      const next = { type: type.value };
      if (action.id) next.id = action.id;
      if (action.when) next.when = action.when;
      actions[i] = next;
      this.renderActions(`action-${i}-type`);
    });
    const move = (to) => {
      const [item] = actions.splice(i, 1);
      actions.splice(to, 0, item);
      this.renderActions(`action-${to}-type`);
    };
    const controls = [
      field("Type", type).field,
      this.textField(action, "id", "Id (optional)", { hint: "Names the step in run records" }).field,
      ...this.typeFields(action, i),
      this.jsonField(action, "when", "Only when (condition JSON, optional)", "Same language as the conditions; $vars holds earlier results"),
      h("div", { class: "actions" },
        i > 0 ? h("button", { type: "button", onclick: () => move(i - 1) }, `Move action ${i + 1} up`) : null,
        i < actions.length - 1 ? h("button", { type: "button", onclick: () => move(i + 1) }, `Move action ${i + 1} down`) : null,
        h("button", { type: "button", class: "link", onclick: () => {
          actions.splice(i, 1);
          this.renderActions(actions.length ? `action-${Math.max(0, i - 1)}-type` : "action-new-type");
        } }, `Remove action ${i + 1}`)),
    ];
    if (!allowed.includes(action.type)) controls.unshift(h("p", { class: "banner warn" }, `${action.type} actions are not available on ${this.session.service.title}.`));
    return h("fieldset", { class: "card action", "data-index": String(i) }, h("legend", {}, `Action ${i + 1}: ${action.type}`), controls);
  }

  typeFields(action, i) {
    switch (action.type) {
      case "clockify_api": {
        const listId = "flow-operations";
        const op = this.textField(action, "operation_id", "Clockify operation (operationId)",
          { list: listId, id: `action-${i}-operation` });
        const about = h("p", { class: "hint", "aria-live": "polite" });
        const pathArea = this.jsonField(action, "path", "Path parameters (JSON)", "workspaceId is always this workspace; e.g. {\"id\": \"{{ $.id }}\"}");
        op.control.addEventListener("change", () => this.describeOperation(action, op.control.value, about, pathArea));
        this.ensureOperations();
        return [op.field, about, pathArea,
          this.jsonField(action, "query", "Query parameters (JSON)"),
          this.jsonField(action, "body", "Body (JSON template)", undefined, 5),
          this.textField(action, "save_as", "Save the response as $vars.", { hint: "Optional variable name" }).field];
      }
      case "http_request":
        return [
          this.selectField(action, "method", "Method", HTTP_METHODS, { fallback: "POST" }).field,
          this.textField(action, "url", "URL", { hint: "Placeholders only after scheme://host/" }).field,
          this.jsonField(action, "headers", "Headers (JSON)", "{\"Authorization\": {\"secret\": \"…\"}} stores an encrypted secret"),
          this.jsonField(action, "body", "Body (JSON template)", undefined, 5),
          this.textField(action, "timeout", "Timeout (seconds)", { type: "number" }).field,
          checkbox("Follow redirects", Boolean(action.follow_redirects), (v) => { if (v) action.follow_redirects = true; else delete action.follow_redirects; }),
          this.textField(action, "save_as", "Save the response as $vars.", { hint: "Optional variable name" }).field,
        ];
      case "set_variable":
        return [this.textField(action, "name", "Variable name").field,
          this.jsonField(action, "value", "Value (JSON template)", "e.g. \"{{ $.projectId }}\"")];
      case "stop":
        return [this.textField(action, "reason", "Reason").field];
      default:
        return [h("p", { class: "muted" }, "Edit this action in JSON mode.")];
    }
  }

  async ensureOperations() {
    if (this.operations) return;
    this.operations = [];
    try {
      this.operations = await this.ctx.api("/api/explorer/operations");
    } catch (error) {
      if (!(error instanceof SessionExpired)) showError(`Could not load the Clockify operations: ${error.message}`);
      return;
    }
    let list = document.getElementById("flow-operations");
    if (!list) {
      list = h("datalist", { id: "flow-operations" });
      this.element.append(list);
    }
    replace(list, this.operations.map((o) => h("option", { value: o.operation_id }, `${o.method} ${o.path}`)));
  }

  async describeOperation(action, operationId, about, pathArea) {
    if (!operationId) { about.textContent = ""; return; }
    let op;
    try {
      op = await this.ctx.api(`/api/explorer/operations/${encodeURIComponent(operationId)}`);
    } catch (error) {
      about.textContent = error instanceof ApiError && error.status === 404 ? `No operation ${operationId}` : "";
      return;
    }
    const pathNames = op.parameters.filter((p) => p.location === "path" && p.name !== "workspaceId").map((p) => p.name);
    const query = op.parameters.filter((p) => p.location === "query").map((p) => p.name);
    about.textContent = `${op.method} ${op.path}. Path: ${pathNames.join(", ") || "none"}. Query: ${query.slice(0, 8).join(", ") || "none"}${query.length > 8 ? "…" : ""}. ${op.request_body ? "Takes a body." : "No body."}`;
    if (action.path === undefined && pathNames.length) {
      action.path = Object.fromEntries(pathNames.map((n) => [n, ""]));
      pathArea.querySelector("textarea").value = JSON.stringify(action.path, null, 2);
    }
  }

  async loadSources() {
    try {
      this.sources = await this.ctx.api("/api/custom-sources");
    } catch {
      this.sources = [];
    }
  }

  // ---- save ------------------------------------------------------------------------------

  /** The document as edited, or null (with the problems shown) when a JSON field does not parse. */
  definition() {
    clearError();
    if (this.mode === "json" && !this.readJson()) return null;
    const problems = this.problems();
    if (problems.length) {
      showError("Some fields are not valid JSON:", problems);
      return null;
    }
    return this.doc;
  }

  async save() {
    if (!this.definition()) return;
    try {
      const saved = this.flow
        ? await this.ctx.api(`/api/flows/${encodeURIComponent(this.flow.id)}`, { method: "PUT", body: this.doc })
        : await this.ctx.api("/api/flows", { method: "POST", body: this.doc });
      announce(`Flow “${saved.name}” saved`);
      this.onDone(saved);
    } catch (error) {
      if (error instanceof SessionExpired) return;
      showError(`The flow was not saved: ${error.message}`, error instanceof ApiError ? error.details : []);
    }
  }
}
