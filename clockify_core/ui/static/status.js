// Status tab: installation, webhook coverage, inbox, jobs with progress, sync state, last events (and per type).

import { SessionExpired } from "./auth.js";
import { announce, badge, fmtSeconds, fmtTime, h, replace, showError, table, toneOf } from "./dom.js";

const BUSY_POLL_MS = 2000;
const IDLE_POLL_MS = 15000;

function dl(pairs) {
  return h("dl", { class: "pairs" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function percentOf(job) {
  const p = job.progress || {};
  if (job.status === "DONE") return 100;
  if (typeof p.percent === "number") return p.percent;
  return null;
}

function progressBar(job, label) {
  const percent = percentOf(job);
  const bar = h("progress", { max: "100", "aria-label": label });
  if (percent !== null) bar.value = percent;
  const text = percent !== null ? `${Math.round(percent)}%` : job.status === "RUNNING" ? "working…" : job.status.toLowerCase();
  return h("div", { class: "bar" }, bar, h("span", { class: "bar-text" }, text));
}

function jobCard(job) {
  const p = job.progress || {};
  const step = [p.endpoint, p.window].filter(Boolean).join(" · ");
  return h("article", { class: "card job", "data-kind": job.kind, "data-status": job.status },
    h("h4", {}, job.kind, " ", badge(job.status, toneOf(job.status))),
    progressBar(job, `${job.kind} progress`),
    dl([
      step && ["Step", step],
      // The history backfill walks back in time: how far the mirror reaches so far.
      p.history_reached && ["History", p.history_complete ? `complete, back to ${p.history_reached}`
        : `mirrored back to ${p.history_reached}, going further`],
      p.slices && ["Slices", String(p.slices)],
      ["Pages", String(p.pages ?? 0)],
      ["Rows", String(p.rows ?? 0)],
      ["Errors", String(p.errors ?? 0)],
      job.status === "RUNNING" && p.eta_seconds !== undefined && ["ETA", fmtSeconds(p.eta_seconds)],
      ["Attempts", String(job.attempts)],
      ["Started", fmtTime(job.started_at)],
      job.finished_at && ["Finished", fmtTime(job.finished_at)],
      p.skipped && ["Skipped", String(p.skipped)],
    ]),
    (job.error || p.last_error) ? h("p", { class: "error-text" }, "Last error: ", job.error || p.last_error) : null);
}

// A kind whose endpoint Clockify does not offer the workspace (a 404 for a feature it lacks)
// is not a fault: say so in a neutral style, with when it is looked at again.
function syncNote(r) {
  if (r.unavailable_status) {
    return h("span", { class: "not-available" }, badge("not available on this workspace", "neutral"),
      h("span", { class: "muted" }, `Clockify answered ${r.unavailable_status}; next check ${fmtTime(r.parked_until)}`));
  }
  return r.parked_until ? `parked until ${fmtTime(r.parked_until)}: ${r.parked_reason || ""}` : r.last_error || "";
}

export class StatusTab {
  constructor(panel, ctx) {
    this.panel = panel;
    this.ctx = ctx;
    this.timer = null;
    this.active = false;
    this.updated = h("span", { class: "muted" });
    this.content = h("div", { class: "status-content" });
    this.refreshButton = h("button", { type: "button", onclick: () => this.load(true) }, "Refresh");
    replace(panel, h("div", { class: "toolbar" }, h("h2", {}, "Status"), this.refreshButton, this.updated), this.content);
  }

  activate() {
    this.active = true;
    this.load(false);
  }

  deactivate() {
    this.active = false;
    clearTimeout(this.timer);
  }

  reset() {
    this.deactivate();
    replace(this.content);
    this.updated.textContent = "";
  }

  async load(manual) {
    clearTimeout(this.timer);
    let data;
    try {
      data = await this.ctx.api("/api/status");
    } catch (error) {
      if (error instanceof SessionExpired) return;
      showError(`Could not load the status: ${error.message}`);
      this.schedule(IDLE_POLL_MS);
      return;
    }
    if (!this.active) return;
    // A background refresh does not yank focus out of what the user is reading.
    if (manual || !this.content.contains(document.activeElement)) this.render(data);
    this.updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    if (manual) announce("Status refreshed");
    const busy = data.jobs.some((j) => j.status === "RUNNING" || j.status === "QUEUED")
      || (data.inbox.PENDING || 0) + (data.inbox.PROCESSING || 0) > 0;
    this.schedule(busy ? BUSY_POLL_MS : IDLE_POLL_MS);
  }

  schedule(ms) {
    clearTimeout(this.timer);
    if (this.active && document.visibilityState !== "hidden") this.timer = setTimeout(() => this.load(false), ms);
    else if (this.active) {
      document.addEventListener("visibilitychange", () => { if (this.active) this.load(false); }, { once: true });
    }
  }

  render(data) {
    const s = this.ctx.session();
    const inst = data.installation;
    const hooks = data.webhooks;
    const expected = s.service.events.length;
    const coverage = h("progress", { max: String(expected || 1), "aria-label": "Webhook coverage" });
    coverage.value = hooks.served;

    const latest = new Map();
    for (const job of data.jobs) if (!latest.has(job.kind)) latest.set(job.kind, job);
    const older = data.jobs.filter((j) => latest.get(j.kind) !== j);
    // Newest first: which events still arrive, and which stopped.
    const byType = Object.entries(data.last_events || {})
      .sort(([, a], [, b]) => String(b.last_received_at).localeCompare(String(a.last_received_at)));

    replace(this.content,
      h("section", { "aria-labelledby": "st-inst" },
        h("h3", { id: "st-inst" }, "Installation"),
        dl([
          ["Workspace", h("code", {}, data.workspace_id)],
          ["Status", badge(inst.status, toneOf(inst.status))],
          ["Installed", fmtTime(inst.installed_at)],
          inst.subscription_plan && ["Plan", inst.subscription_plan],
          inst.api_url && ["API", h("code", {}, inst.api_url)],
        ])),
      h("section", { "aria-labelledby": "st-hooks" },
        h("h3", { id: "st-hooks" }, "Webhook coverage"),
        h("div", { class: "bar" }, coverage, h("span", { class: "bar-text" }, `${hooks.served} of ${expected} events`)),
        dl([["From the manifest", String(hooks.manifest)], ["Registered at install", String(hooks.runtime)]]),
        hooks.refused.length ? h("div", {}, h("h4", {}, "Refused by Clockify"),
          h("ul", {}, hooks.refused.map((r) => h("li", {}, h("code", {}, r.event), r.error ? `: ${r.error}` : "")))) : null,
        hooks.missing.length ? h("details", {}, h("summary", {}, `${hooks.missing.length} events not covered`),
          h("ul", { class: "inline-list" }, hooks.missing.map((e) => h("li", {}, h("code", {}, e))))) : null),
      h("section", { "aria-labelledby": "st-inbox" },
        h("h3", { id: "st-inbox" }, "Inbox"),
        dl([
          ["Waiting", String(data.inbox.PENDING ?? 0)],
          ["Processing", String(data.inbox.PROCESSING ?? 0)],
          ["Applied", String(data.inbox.DONE ?? 0)],
          ["Dead letters", data.inbox.DEAD ? badge(String(data.inbox.DEAD), "bad") : "0"],
        ])),
      h("section", { "aria-labelledby": "st-jobs" },
        h("h3", { id: "st-jobs" }, "Bootstrap and sync"),
        latest.size ? h("div", { class: "cards" }, [...latest.values()].map(jobCard)) : h("p", { class: "muted" }, "No jobs yet."),
        older.length ? h("details", {}, h("summary", {}, `${older.length} earlier jobs`),
          table("Earlier jobs", ["Kind", "Status", "Rows", "Finished", "Error"], older.map((j) => h("tr", {},
            h("td", {}, j.kind), h("td", {}, badge(j.status, toneOf(j.status))), h("td", {}, String(j.progress?.rows ?? 0)),
            h("td", {}, fmtTime(j.finished_at)), h("td", {}, j.error || ""))))) : null,
        data.sync.length ? h("h4", {}, "Sync state") : null,
        data.sync.length ? table("Sync state", ["Data", "Last success", "Rows", "Up to", "Note"], data.sync.map((r) => h("tr", {},
          h("td", {}, r.kind === "*" ? "(all)" : r.kind),
          // Nothing was ever read of data Clockify does not offer: the note takes the row.
          r.unavailable_status ? h("td", { colspan: "4" }, syncNote(r)) : [
            h("td", {}, fmtTime(r.last_success_at)), h("td", {}, String(r.rows_total)),
            h("td", {}, fmtTime(r.watermark)), h("td", {}, syncNote(r))]))) : null),
      h("section", { "aria-labelledby": "st-events" },
        h("h3", { id: "st-events" }, "Last events"),
        data.recent_events.length
          ? table("Last events", ["#", "Event", "Status", "Received"], data.recent_events.map((e) => h("tr", {},
            h("td", {}, String(e.id)),
            h("td", {}, h("code", {}, e.event_type), e.source !== "clockify" ? ` (${e.source})` : ""),
            h("td", {}, badge(e.status, toneOf(e.status)), e.last_error ? h("div", { class: "error-text" }, e.last_error) : null),
            h("td", {}, fmtTime(e.received_at)))))
          : h("p", { class: "muted" }, "No events received yet."),
        byType.length ? h("h4", { id: "st-types" }, "By event type") : null,
        byType.length ? table("Events by type", ["Event", "Received", "Last"], byType.map(([type, e]) => h("tr", {},
          h("td", {}, h("code", {}, type)), h("td", {}, String(e.count)), h("td", {}, fmtTime(e.last_received_at))))) : null));
  }
}
