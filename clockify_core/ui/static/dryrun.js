// Dry run of the flow being edited: against one of the last events or a sample event, with
// nothing sent or written (POST /api/flows/dry-run; docs/flows.md "Dry-run").

import { ApiError, SessionExpired } from "./auth.js";
import { announce, badge, field, fmtTime, h, pretty, replace, showError } from "./dom.js";

export class DryRunPanel {
  /** `definition()` returns the flow document to try, or null when it cannot be read. */
  constructor(ctx, definition) {
    this.ctx = ctx;
    this.definition = definition;
    this.recent = [];
    this.dryResult = h("div", { class: "dry-result" });
    this.element = this.build();
  }

  build() {
    this.eventSelect = h("select", { id: "dry-event" }, h("option", { value: "" }, "Loading recent events…"));
    this.sampleType = h("input", { type: "text", autocomplete: "off", spellcheck: "false" });
    this.sampleBody = h("textarea", { rows: "6", spellcheck: "false", class: "code" });
    this.sampleBody.value = "{}";
    const sample = h("div", { class: "sample", hidden: true },
      field("Sample event type", this.sampleType).field, field("Sample body (JSON)", this.sampleBody).field);
    this.eventSelect.addEventListener("change", () => { sample.hidden = this.eventSelect.value !== "sample"; });
    this.loadRecent();
    return h("section", { class: "dry-run", "aria-labelledby": "dry-title" },
      h("h3", { id: "dry-title" }, "Dry run"),
      h("p", { class: "muted" }, "Evaluates this definition (unsaved edits included) against an event; nothing is sent or written."),
      field("Event", this.eventSelect).field, sample,
      h("div", { class: "actions" },
        h("button", { type: "button", onclick: () => this.loadRecent() }, "Reload events"),
        h("button", { type: "button", class: "primary", id: "dry-run", onclick: () => this.dryRun() }, "Dry run")),
      this.dryResult);
  }

  async loadRecent() {
    try {
      const status = await this.ctx.api("/api/status");
      this.recent = status.recent_events;
    } catch (error) {
      if (error instanceof SessionExpired) return;
      this.recent = [];
    }
    replace(this.eventSelect,
      this.recent.map((e) => h("option", { value: String(e.id) }, `#${e.id} ${e.event_type} · ${fmtTime(e.received_at)}`)),
      h("option", { value: "sample" }, "A sample event (JSON)…"));
    this.eventSelect.dispatchEvent(new Event("change"));
  }

  async dryRun() {
    const flow = this.definition();
    if (!flow) return;
    const request = { flow };
    if (this.eventSelect.value === "sample") {
      try {
        request.event = { type: this.sampleType.value.trim(), body: JSON.parse(this.sampleBody.value) };
      } catch (error) {
        showError(`The sample body is not valid JSON: ${error.message}`);
        return;
      }
      if (flow.trigger && flow.trigger.custom_source) {
        request.event.source = "custom";
        request.event.source_ref = flow.trigger.custom_source;
      }
    } else if (this.eventSelect.value) {
      request.inbox_event_id = Number(this.eventSelect.value);
    } else {
      showError("Choose an event to try the flow against");
      return;
    }
    replace(this.dryResult, h("p", { class: "muted" }, "Evaluating…"));
    try {
      const result = await this.ctx.api("/api/flows/dry-run", { method: "POST", body: request });
      this.renderDryRun(result);
      announce(result.matched ? `Matched; ${result.actions.length} actions rendered` : `Not matched: ${result.blocked_by || ""}`);
    } catch (error) {
      replace(this.dryResult);
      if (error instanceof SessionExpired) return;
      showError(`The dry run failed: ${error.message}`, error instanceof ApiError ? error.details : []);
    }
  }

  renderDryRun(r) {
    const verdict = r.would_run ? badge("Would run", "ok") : r.matched ? badge("Matched, would not run", "warn") : badge("Not matched", "bad");
    replace(this.dryResult,
      h("h4", { id: "dry-verdict" }, verdict),
      r.blocked_by ? h("p", {}, r.blocked_by) : null,
      r.conditions ? h("div", {}, h("h4", {}, "Conditions"), conditionTree(r.conditions)) : null,
      r.actions.length ? h("div", {}, h("h4", {}, "Actions"), h("ol", { class: "dry-actions" }, r.actions.map((a) => h("li", {},
        h("p", {}, h("strong", {}, a.id), ` (${a.type}) `, badge(a.outcome, a.outcome === "would_run" ? "ok" : a.outcome === "error" ? "bad" : "warn")),
        a.error ? h("p", { class: "error-text" }, a.error) : null,
        a.note ? h("p", { class: "muted" }, a.note) : null,
        a.request ? h("pre", { class: "code", tabindex: "0", "aria-label": `Request of ${a.id}` }, pretty(a.request)) : null,
        a.variable ? h("pre", { class: "code", tabindex: "0", "aria-label": `Variable set by ${a.id}` }, pretty(a.variable)) : null)))) : null,
      Object.keys(r.variables || {}).length ? h("details", {}, h("summary", {}, "Variables"), h("pre", { class: "code" }, pretty(r.variables))) : null);
  }
}

function conditionTree(node) {
  const mark = (ok) => h("span", { class: `mark ${ok ? "ok" : "bad"}` }, ok ? "✓ true" : "✗ false");
  if (node.always) return h("p", {}, "No conditions ", mark(true));
  for (const group of ["all", "any"]) {
    if (Array.isArray(node[group])) {
      return h("div", { class: "tree" }, h("p", {}, group === "all" ? "All of " : "Any of ", mark(node.result)),
        h("ul", {}, node[group].map((child) => h("li", {}, conditionTree(child)))));
    }
  }
  if (node.not) return h("div", { class: "tree" }, h("p", {}, "Not ", mark(node.result)), h("ul", {}, h("li", {}, conditionTree(node.not))));
  return h("p", { class: "leaf" }, h("code", {}, `${node.path} ${node.op} ${JSON.stringify(node.value)}`), " saw ",
    h("code", {}, typeof node.actual === "string" ? node.actual : JSON.stringify(node.actual)), " ", mark(node.result));
}
