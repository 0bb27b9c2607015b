// The error page's one action: ask Clockify for a fresh token and reopen the page with it.
// It calls no API; the server verifies the new token when the page loads again.

import { askForToken } from "./clockify.js";

// Even a refused token does not stay in the address bar or the history.
const url = new URL(window.location.href);
if (url.searchParams.has("auth_token")) {
  url.searchParams.delete("auth_token");
  window.history.replaceState(null, "", url.pathname + url.search + url.hash);
}

const button = document.getElementById("refresh");
const status = document.getElementById("refresh-status");

button.addEventListener("click", async () => {
  button.disabled = true;
  status.textContent = "Waiting for Clockify…";
  const token = await askForToken(8000);
  if (!token) {
    button.disabled = false;
    status.textContent = "No new token arrived. Close the add-on and open it again from Clockify.";
    return;
  }
  status.textContent = "Opening the page again…";
  // replace(): no history entry keeps the token; the page removes it from the URL at once.
  window.location.replace(`${window.location.pathname}?auth_token=${encodeURIComponent(token)}`);
});
