// Entry point of the sidebar page: session, tabs, and the three panels.

import { api, retryAfterExpiry, session, start, takeTokenFromUrl } from "./auth.js";
import { announce, clearError } from "./dom.js";
import { ExplorerTab } from "./explorer.js";
import { FlowsTab } from "./flows.js";
import { StatusTab } from "./status.js";
import { setupTabs } from "./tabs.js";

const boot = JSON.parse(document.getElementById("boot").textContent);
const token = takeTokenFromUrl();
const app = document.getElementById("app");
const expiredBox = document.getElementById("expired");

const ctx = { api, session, base: boot.apiBase };
const panels = {
  status: new StatusTab(document.getElementById("panel-status"), ctx),
  explorer: new ExplorerTab(document.getElementById("panel-explorer"), ctx),
  flows: new FlowsTab(document.getElementById("panel-flows"), ctx),
};
let active = "status";

function show(name) {
  if (active !== name) panels[active].deactivate();
  active = name;
  panels[name].activate();
}

function onExpired() {
  // No data stays on screen once the token is gone.
  for (const panel of Object.values(panels)) panel.reset();
  clearError();
  app.hidden = true;
  document.querySelector(".who").hidden = true;
  expiredBox.hidden = false;
  expiredBox.querySelector("h2").setAttribute("tabindex", "-1");
  expiredBox.querySelector("h2").focus();
  announce("Your session has expired");
}

function onRenewed() {
  expiredBox.hidden = true;
  app.hidden = false;
  document.querySelector(".who").hidden = false;
  panels[active].activate();
  document.getElementById(`tab-${active}`).focus();
}

document.getElementById("expired-refresh").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  button.textContent = "Waiting for Clockify…";
  const ok = await retryAfterExpiry();
  button.disabled = false;
  button.textContent = "Ask Clockify for a new token";
  if (!ok) announce("No new token arrived; reopen the add-on from Clockify");
});

if (token) {
  start({ token, session: boot.session, base: boot.apiBase, onExpired, onRenewed });
  const tabs = setupTabs(document.querySelector('[role="tablist"]'), show);
  tabs.select("status");
} else {
  // Reloaded after the token left the URL: the server renders the page only with one.
  onExpired();
}
