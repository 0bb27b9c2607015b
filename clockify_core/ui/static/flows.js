// Flows tab: the workspace's flows, the editor (flowform.js) and run history.

import { ApiError, SessionExpired } from "./auth.js";
import { announce, badge, fmtTime, h, pretty, replace, showError, table, toneOf } from "./dom.js";
import { FlowEditor } from "./flowform.js";

function triggerText(trigger) {
  if (!trigger) return "—";
  if ("custom_source" in trigger) {
    const events = trigger.events && trigger.events.length ? trigger.events.join(", ") : "any event";
    return `custom source ${trigger.custom_source}: ${events}`;
  }
  const events = trigger.events || [];
  return events.length > 3 ? `${events.slice(0, 3).join(", ")} +${events.length - 3}` : events.join(", ");
}

// Short visible labels; the flow's name completes the accessible name ("Edit Nightly tags").
function named(flow) {
  return h("span", { class: "visually-hidden" }, ` ${flow.name}`);
}

export class FlowsTab {
  constructor(panel, ctx) {
    this.panel = panel;
    this.ctx = ctx;
    this.view = "list";
    this.lastErrors = new Map();
  }

  get admin() { return this.ctx.session().is_admin; }

  activate() {
    if (this.view === "list") this.showList();
  }

  deactivate() {}

  reset() {
    this.view = "list";
    replace(this.panel);
  }

  focusHeading(id) {
    const heading = document.getElementById(id);
    if (heading) heading.focus();
  }

  async showList(focus = false) {
    this.view = "list";
    let flows;
    try {
      flows = await this.ctx.api("/api/flows");
    } catch (error) {
      if (!(error instanceof SessionExpired)) showError(`Could not load the flows: ${error.message}`);
      return;
    }
    await this.loadLastErrors(flows);
    const rows = flows.map((flow) => {
      const state = flow.enabled ? badge("Enabled", "ok") : badge("Disabled", "warn");
      const error = flow.disabled_reason || this.lastErrors.get(flow.id) || "";
      const buttons = [
        h("button", { type: "button", onclick: () => this.showEditor(flow) }, this.admin ? "Edit" : "View", named(flow)),
      ];
      if (this.admin) {
        // Runs hold events and API answers: admins only (the API answers 403 to a member).
        buttons.push(h("button", { type: "button", onclick: () => this.showRuns(flow) }, "Runs", h("span", { class: "visually-hidden" }, ` of ${flow.name}`)));
        buttons.push(h("button", { type: "button", onclick: () => this.toggle(flow) }, flow.enabled ? "Disable" : "Enable", named(flow)));
        const del = h("button", { type: "button", class: "link danger" }, "Delete", named(flow));
        del.addEventListener("click", () => {
          if (del.dataset.confirm) { this.remove(flow); return; }
          del.dataset.confirm = "1";
          replace(del, "Really delete", named(flow), "?");
          announce(`Press again to delete ${flow.name} and its runs`);
        });
        buttons.push(del);
      }
      return h("article", { class: "card flow", "data-flow": flow.id },
        h("h3", {}, flow.name, " ", state),
        h("dl", { class: "pairs" },
          h("dt", {}, "Trigger"), h("dd", {}, triggerText(flow.trigger)),
          h("dt", {}, "Actions"), h("dd", {}, String(flow.actions.length)),
          h("dt", {}, "Matched"), h("dd", {}, `${flow.matched_count} of ${flow.evaluated_count} events`),
          h("dt", {}, "Last match"), h("dd", {}, fmtTime(flow.last_matched_at)),
          h("dt", {}, "Last error"), h("dd", { class: error ? "error-text" : "" }, error || "none")),
        h("div", { class: "actions" }, buttons));
    });
    replace(this.panel,
      h("div", { class: "toolbar" }, h("h2", { id: "flows-title", tabindex: "-1" }, "Flows"),
        this.admin ? h("button", { type: "button", class: "primary", onclick: () => this.showEditor(null) }, "New flow") : null,
        h("button", { type: "button", onclick: () => this.showList(true) }, "Refresh")),
      this.admin ? null : h("p", { class: "muted" }, "Only workspace owners and admins can change flows."),
      flows.length ? h("div", { class: "cards" }, rows) : h("p", { class: "muted" }, "No flows yet."));
    if (focus) this.focusHeading("flows-title");
  }

  async loadLastErrors(flows) {
    if (!this.admin) return; // a member may not read runs
    // Only failing flows: their newest failed run says why.
    const failing = flows.filter((f) => f.consecutive_failures > 0 && !f.disabled_reason).slice(0, 20);
    await Promise.all(failing.map(async (flow) => {
      try {
        const page = await this.ctx.api(`/api/flows/${encodeURIComponent(flow.id)}/runs`, { query: { limit: 1, status: "FAILED" } });
        if (page.runs.length && page.runs[0].error) this.lastErrors.set(flow.id, page.runs[0].error);
      } catch (error) {
        if (error instanceof SessionExpired) throw error;
      }
    }));
  }

  async toggle(flow) {
    try {
      const saved = await this.ctx.api(`/api/flows/${encodeURIComponent(flow.id)}/${flow.enabled ? "disable" : "enable"}`, { method: "POST" });
      announce(`${saved.name} ${saved.enabled ? "enabled" : "disabled"}`);
      this.showList();
    } catch (error) {
      if (!(error instanceof SessionExpired)) showError(`Could not switch ${flow.name}: ${error.message}`);
    }
  }

  async remove(flow) {
    try {
      await this.ctx.api(`/api/flows/${encodeURIComponent(flow.id)}`, { method: "DELETE" });
      announce(`${flow.name} deleted`);
      this.showList(true);
    } catch (error) {
      if (!(error instanceof SessionExpired)) showError(`Could not delete ${flow.name}: ${error.message}`);
    }
  }

  showEditor(flow) {
    this.view = "editor";
    if (!this.admin) {
      replace(this.panel, h("h2", { id: "editor-title", tabindex: "-1" }, flow.name),
        h("pre", { class: "code", tabindex: "0" }, pretty({ trigger: flow.trigger, conditions: flow.conditions, actions: flow.actions })),
        h("button", { type: "button", onclick: () => this.showList(true) }, "Back to flows"));
      this.focusHeading("editor-title");
      return;
    }
    const editor = new FlowEditor(this.ctx, {
      flow,
      onDone: (saved) => (saved ? this.showEditor(saved) : this.showList(true)),
    });
    replace(this.panel, editor.element);
    this.focusHeading("editor-title");
  }

  async showRuns(flow, before = null, rows = []) {
    this.view = "runs";
    let page;
    try {
      page = await this.ctx.api(`/api/flows/${encodeURIComponent(flow.id)}/runs`, { query: { limit: 25, before_id: before } });
    } catch (error) {
      if (!(error instanceof SessionExpired)) showError(`Could not load the runs: ${error instanceof ApiError ? error.message : error}`);
      return;
    }
    const all = rows.concat(page.runs);
    replace(this.panel,
      h("div", { class: "toolbar" }, h("h2", { id: "runs-title", tabindex: "-1" }, `Runs of ${flow.name}`),
        h("button", { type: "button", onclick: () => this.showList(true) }, "Back to flows")),
      all.length ? table(`Runs of ${flow.name}`, ["#", "Status", "Event", "When", "Time"], all.map((run) => h("tr", {},
        h("td", {}, String(run.id)),
        h("td", {}, badge(run.status, toneOf(run.status)), run.error ? h("div", { class: "error-text" }, run.error) : null,
          run.actions.length ? h("details", {}, h("summary", {}, `${run.actions.length} steps`),
            h("pre", { class: "code" }, pretty(run.actions))) : null),
        h("td", {}, run.event_type || "—", run.entity_id ? h("div", { class: "muted" }, run.entity_id) : null),
        h("td", {}, fmtTime(run.created_at)),
        h("td", {}, run.duration_ms !== null ? `${run.duration_ms} ms` : "—"))))
        : h("p", { class: "muted" }, "No runs yet."),
      page.next_before_id ? h("button", { type: "button", onclick: () => this.showRuns(flow, page.next_before_id, all) }, "Load older runs") : null);
    if (!before) this.focusHeading("runs-title");
  }
}
