"""Browser tests of the sidebar page: Debian's Chromium driven by Playwright (no browser download).

One Chromium, one service (a uvicorn subprocess) and one simulator (loopback port) per
module. Clockify's side of the iframe is played by a small host page on another
loopback port, allowed to frame the page through ``UI__FRAME_ANCESTORS``.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from clockify_core.security.signing import KeyPair, TokenSigner
from clockify_core.simulator.marketplace import Installation as SimInstallation
from clockify_core.simulator.state import Simulator
from clockify_core.simulator.testing import ServedSimulator, served_simulator, small_config
from clockify_core.testing.databases import create_database, drop_database
from clockify_core.testing.processes import ServiceProcess, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"

T = TypeVar("T")


# Module scope, not session: while Playwright's sync API is running it marks an event loop as
# running on the test thread, which would break every async test collected after tests/ui.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        message = f"{CHROMIUM} is missing (scripts/test installs Debian's chromium package)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: required)", pytrace=False)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class UiService:
    """A running service installed on a simulator workspace."""

    name: str
    url: str
    process: ServiceProcess
    sim: ServedSimulator
    workspace_id: str
    addon_id: str

    @property
    def state(self) -> Simulator:
        simulator: Simulator = self.sim.server.server.config.app.state.simulator
        return simulator

    @property
    def installation(self) -> SimInstallation:
        return self.state.marketplace.get(self.addon_id)

    def owner_token(self) -> str:
        """A user token exactly as the simulator hands it to a component iframe."""
        reply = self.sim.control.post("/__sim/user-token", json={"addonId": self.addon_id}).raise_for_status()
        return str(reply.json()["token"])

    def user_token(self, *, role: str = "OWNER", theme: str = "DEFAULT", ttl: int = 1800,
                   workspace_id: str | None = None, addon_id: str | None = None, signer: TokenSigner | None = None) -> str:
        """A variant signed with the simulator's key (role, theme, expiry, workspace), unique per call."""
        ws = self.state.workspace(self.workspace_id)
        urls = self.state.urls
        return (signer or self.installation.signer).user_token(
            workspace_id or self.workspace_id, addon_id or self.addon_id, user_id=ws.owner_id,
            backend_url=urls.backend, reports_url=urls.reports, workspace_role=role, theme=theme,
            ttl_seconds=ttl, extra={"jti": uuid.uuid4().hex},
        )

    def forged_token(self) -> str:
        """Claims a Clockify token would carry, signed with a key Clockify never used."""
        signer = TokenSigner(KeyPair.generate().private_pem, self.installation.signer.addon_key)
        return self.user_token(signer=signer)

    def page_url(self, token: str) -> str:
        return f"{self.url}/ui?auth_token={token}"

    def api(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-Addon-Token": token}, timeout=30, trust_env=False)


def _service_env(
    prefix: str, sim: ServedSimulator, db_url: str, port: int, frame_origin: str, extra: dict[str, str]
) -> dict[str, str]:
    return {
        f"{prefix}DB_URL": db_url,
        f"{prefix}BASE_URL": f"http://127.0.0.1:{port}",
        f"{prefix}PUBLIC_KEY": sim.public_key_pem,
        f"{prefix}ALLOWED_API_HOSTS": httpx.URL(sim.base_url).netloc.decode(),
        f"{prefix}UI__FRAME_ANCESTORS": frame_origin,
        f"{prefix}WORKER__POLL_INTERVAL": "0.1",
        f"{prefix}SYNC__SCHEDULER": "false",
        f"{prefix}SYNC__BOOTSTRAP_DAYS": "30",
        # The pages are looked at once bootstrap is done: no history backfill keeps them busy.
        f"{prefix}SYNC__HISTORY_BACKFILL": "false",
        "LOG_FORMAT": "json",
        **extra,
    }


def run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a thread of its own: Playwright's sync API keeps an
    event loop marked as running on the test thread, so ``asyncio.run`` refuses there."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


@contextmanager
def running_service(
    service: str, prefix: str, *, postgres_server_url: str, template: str, tmp: Path, host: HostServer,
    extra_env: dict[str, str] | None = None,
) -> Iterator[UiService]:
    """Simulator on a loopback port, a fresh database cloned from the migrated template,
    the service as a uvicorn subprocess, installed on the simulator's first workspace."""
    db_url = run_async(lambda: create_database(postgres_server_url, template=template))
    try:
        with served_simulator(small_config()) as sim:
            port = free_port()
            env = _service_env(prefix, sim, db_url, port, host.origin, extra_env or {})
            process = ServiceProcess(f"{service}.main:app", env=env, port=port, log_path=tmp / f"{service}.log", cwd=tmp)
            process.start()
            try:
                process.wait_ready()
                installed = sim.control.post("/__sim/install", json={"addonUrl": process.url}).raise_for_status().json()
                yield UiService(service, process.url, process, sim, installed["workspaceId"], installed["addonId"])
            finally:
                assert process.stop(), process.tail_log()
    finally:
        run_async(lambda: drop_database(db_url))


HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Clockify (test host)</title></head>
<body>
<h1>Host</h1>
<iframe id="addon" title="Add-on" src="%(src)s" width="400" height="900"></iframe>
<iframe id="sibling" title="Another frame" src="about:blank" width="10" height="10"></iframe>
<script>
  // What Clockify's web app does for its add-on iframe: answer refreshAddonToken requests
  // (with the tokens in window.replies, in order; none left = no answer).
  window.requests = [];
  window.replies = %(replies)s;
  window.replyShape = "%(shape)s";
  window.addEventListener("message", (event) => {
    const frame = document.getElementById("addon").contentWindow;
    if (event.source !== frame) return;
    window.requests.push(event.data);
    let data;
    try { data = typeof event.data === "string" ? JSON.parse(event.data) : event.data; } catch (e) { return; }
    if (!data || data.action !== "refreshAddonToken") return;
    const token = window.replies.shift();
    if (!token) return;
    const reply = {title: "refreshAddonToken", body: token};
    frame.postMessage(window.replyShape === "object" ? reply : JSON.stringify(reply), "*");
  });
</script>
</body></html>
"""


class _HostHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        if "src" not in query:
            self.send_error(404)
            return
        body = HOST_PAGE % {
            "src": html.escape(query["src"][0]),
            "replies": json.dumps(json.loads(query.get("replies", ["[]"])[0])),
            "shape": "object" if query.get("shape", [""])[0] == "object" else "json-string",
        }
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


@dataclass
class HostServer:
    """Plays Clockify's web app around the iframe, on a loopback port (a public origin may not
    frame a loopback page under Chromium's local network access rules)."""

    port: int

    @property
    def origin(self) -> str:
        """Allowed to frame the page (the services get it in UI__FRAME_ANCESTORS)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def other_origin(self) -> str:
        """The same server under another name: an origin nobody allowed."""
        return f"http://localhost:{self.port}"

    def url(self, src: str, *, replies: list[str] | None = None, shape: str = "json-string",
            origin: str | None = None) -> str:
        query = urlencode({"src": src, "replies": json.dumps(replies or []), "shape": shape})
        return f"{origin or self.origin}/host?{query}"


@pytest.fixture(scope="package")
def host() -> Iterator[HostServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HostHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="ui-test-host", daemon=True)
    thread.start()
    try:
        yield HostServer(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 400, "height": 900})
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.js_errors = errors  # type: ignore[attr-defined]
    return page


def screenshot(page: Page, name: str, *, full_page: bool = True, part: Locator | None = None) -> Path:
    """Save ``test-artifacts/ui/<name>.png``: the whole page, or one part of it."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if part is not None:
        # The status tab re-renders every few seconds; a locator re-resolves, so a part replaced
        # in the middle of its screenshot is simply taken again.
        for attempt in range(3):
            try:
                part.screenshot(path=str(path))
                break
            except PlaywrightError as exc:
                if "not attached" not in str(exc) or attempt == 2:
                    raise
    else:
        page.screenshot(path=str(path), full_page=full_page)
    return path


def api_requests(page: Page) -> list[str]:
    """Record every request URL the page makes from now on."""
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    return seen


def wait_until(
    check: Callable[[], Any], *, page: Page | None = None, timeout: float = 30.0, interval: float = 0.2,
    what: str = "condition",
) -> Any:
    """Poll ``check``; with ``page``, wait through Playwright so its events (requests...) keep arriving."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        if page is not None:
            page.wait_for_timeout(interval * 1000)
        else:
            time.sleep(interval)


def boot_data(page: Page) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(page.locator("#boot").text_content() or "{}")
    return data
