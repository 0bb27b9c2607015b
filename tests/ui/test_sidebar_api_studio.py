"""The sidebar page of API Studio (STANDARD tier, GET-only explorer) in Chromium, against the simulator."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Frame, Page, Request, Route, expect

from tests.ui.conftest import (
    HostServer,
    UiService,
    api_requests,
    running_service,
    screenshot,
    wait_until,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def service(
    postgres_server_url: str, postgres_template: str, tmp_path_factory: pytest.TempPathFactory, host: HostServer
) -> Iterator[UiService]:
    # No leeway on `exp`: a token minted to expire in a few seconds really does.
    with running_service(
        "api_studio", "API_STUDIO_", postgres_server_url=postgres_server_url, template=postgres_template,
        tmp=tmp_path_factory.mktemp("api_studio"), host=host, extra_env={"API_STUDIO_SIGNING__LEEWAY_SECONDS": "0"},
    ) as svc:
        yield svc


def fire(service: UiService, event: str) -> tuple[dict[str, Any], int]:
    """Cause an event in the simulator, wait until the service has applied it; its body and inbox id."""
    with service.api(service.owner_token()) as api:
        before = {e["id"] for e in api.get("/api/status").json()["recent_events"]}
        fired = service.sim.control.post("/__sim/fire", json={"event": event, "workspaceId": service.workspace_id})
        body: dict[str, Any] = fired.raise_for_status().json()["body"]
        service.sim.control.post("/__sim/deliveries/drain", json={"timeout": 10}).raise_for_status()

        def applied() -> int | None:
            events = api.get("/api/status").json()["recent_events"]
            return next((e["id"] for e in events if e["id"] not in before and e["event_type"] == event
                         and e["status"] == "DONE"), None)

        inbox_id: int = wait_until(applied, what=f"{event} applied")
    return body, inbox_id


def open_page(page: Page, service: UiService, token: str) -> None:
    response = page.goto(service.page_url(token))
    assert response is not None
    assert response.status == 200, response.text()
    expect(page.locator("#panel-status h3").first).to_be_visible()


def test_status_tab_shows_the_installation_and_bootstrap_with_the_token_out_of_the_url(
    service: UiService, host: HostServer, page: Page
) -> None:
    token = service.owner_token()
    seen: list[Request] = []
    page.on("request", lambda request: seen.append(request))
    response = page.goto(service.page_url(token))
    assert response is not None
    assert response.status == 200
    headers = response.headers
    csp = headers["content-security-policy"]
    assert "script-src 'self';" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert f"frame-ancestors https://*.clockify.me https://clockify.me {host.origin}" in csp
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"

    # The bootstrap job runs in the service's worker; the page polls until it is done.
    bootstrap = page.locator('.job[data-kind="bootstrap"][data-status="DONE"]')
    expect(bootstrap).to_be_visible(timeout=60_000)
    expect(bootstrap.locator("progress")).to_have_attribute("value", "100")
    assert "auth_token" not in page.url
    assert page.evaluate("location.search") == ""
    assert token not in page.content()

    ws = service.state.workspace(service.workspace_id)
    status = page.locator("#panel-status")
    expect(status).to_contain_text(service.workspace_id)
    expect(status.locator(".badge", has_text="ACTIVE")).to_be_visible()
    expect(status).to_contain_text("12 of 12 events")  # API Studio's webhook coverage
    project_row = status.locator("tr", has=page.locator("td", has_text=re.compile(r"^project$")))
    expect(project_row).to_contain_text(str(len(ws.projects)))

    _, project_event = fire(service, "NEW_PROJECT")
    page.get_by_role("button", name="Refresh", exact=True).click()
    events = page.locator("#st-events + .scroll")
    expect(events.locator("tr", has_text="NEW_PROJECT").first).to_contain_text(str(project_event))
    by_type = page.locator("#st-types + .scroll")
    expect(by_type.locator("tr", has_text="NEW_PROJECT").locator("td").nth(1)).to_have_text("1")
    expect(page.locator("#live")).to_have_text("Status refreshed")

    api_calls = [r for r in seen if "/api/" in r.url]
    assert api_calls, "the page made no API call"
    for request in api_calls:
        assert request.headers.get("x-addon-token") == token, request.url
    assert all(token not in r.url for r in seen if "/api/" in r.url or "/assets/" in r.url)
    # Readable at a sidebar's width: nothing widens the page past the 400 px viewport.
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    assert page.js_errors == []  # type: ignore[attr-defined]
    screenshot(page, "status-light")


def test_dark_theme_and_keyboard_navigation_of_the_tabs(service: UiService, page: Page) -> None:
    open_page(page, service, service.user_token(theme="DARK"))
    assert page.locator("html").get_attribute("data-theme") == "dark"
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(27, 37, 48)"
    expect(page.locator('.job[data-kind="bootstrap"]')).to_be_visible(timeout=60_000)
    screenshot(page, "status-dark")

    page.focus("#tab-status")
    steps = [("ArrowRight", "explorer"), ("ArrowRight", "flows"), ("ArrowRight", "status"), ("End", "flows"),
             ("Home", "status"), ("ArrowLeft", "flows"), ("ArrowLeft", "explorer")]
    for key, expected in steps:
        page.keyboard.press(key)
        focused = page.evaluate("document.activeElement.id")
        assert focused == f"tab-{expected}", (key, focused)
        for name in ("status", "explorer", "flows"):
            selected = name == expected
            assert page.get_attribute(f"#tab-{name}", "aria-selected") == str(selected).lower()
            assert page.get_attribute(f"#tab-{name}", "tabindex") == ("0" if selected else "-1")
            assert page.locator(f"#panel-{name}").is_visible() is selected
    # A visible focus ring for keyboard users.
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    # Tab leaves the tab list for the selected panel: one stop per tab list.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "panel-explorer"
    expect(page.locator("#panel-explorer .op-list details").first).to_be_visible()
    screenshot(page, "explorer-dark")


def test_explorer_runs_a_get_and_refuses_a_post_on_api_studio(service: UiService, page: Page) -> None:
    token = service.owner_token()
    open_page(page, service, token)
    page.click("#tab-explorer")
    page.get_by_label("Search operations").fill("getProjects")
    page.click('[data-operation="getProjects"]')
    expect(page.locator("#op-title")).to_be_focused()
    page.get_by_text("Optional query parameters").click()
    page.get_by_label("page-size", exact=True).fill("5")
    page.get_by_role("button", name="Execute").click()

    body = page.locator("#op-result pre.body")
    expect(body).to_be_visible()
    projects = json.loads(body.text_content() or "null")
    ws = service.state.workspace(service.workspace_id)
    assert len(projects) == 5
    assert {p["id"] for p in projects} <= set(ws.projects)
    assert {p["name"] for p in projects} <= {p["name"] for p in ws.projects.values()}
    expect(page.locator("#op-result")).to_contain_text("HTTP 200")
    expect(page.locator("#live")).to_contain_text("getProjects: HTTP 200")
    history = page.locator("#hist-title").locator("xpath=../..")
    expect(history.locator("tr", has_text="getProjects")).to_contain_text("200")
    screenshot(page, "explorer", part=page.locator("#panel-explorer .op-form"))

    # Writes are not for this tier: shown disabled with the reason, and refused by the backend.
    page.get_by_label("Search operations").fill("createNewTag")
    entry = page.locator('[data-operation="createNewTag"]')
    expect(entry).to_have_class(re.compile("not-allowed"))
    expect(page.locator("#why-createNewTag")).to_contain_text("GET")
    entry.click()
    expect(page.locator("#op-refused")).to_contain_text("GET")
    expect(page.get_by_role("button", name="Execute")).to_be_disabled()
    screenshot(page, "explorer-refused")
    tags_before = len(ws.tags)
    with service.api(token) as api:
        refused = api.post("/api/explorer/execute", json={"operationId": "createNewTag", "body": {"name": "nope"}})
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("tier-policy")
    assert len(ws.tags) == tags_before


def test_a_flow_is_created_in_the_form_dry_run_against_a_recent_event_and_its_runs_shown(
    service: UiService, page: Page
) -> None:
    fired, inbox_id = fire(service, "NEW_TIME_ENTRY")
    entry_id = str(fired["id"])
    token = service.owner_token()
    open_page(page, service, token)
    page.click("#tab-flows")
    page.get_by_role("button", name="New flow").click()
    expect(page.locator("#editor-title")).to_be_focused()

    page.get_by_label("Name", exact=True).fill("Look up new entries")
    page.get_by_label("Filter events").fill("NEW_TIME")
    page.get_by_label("NEW_TIME_ENTRY", exact=True).check()
    page.get_by_label("Run when").select_option("all")
    page.locator("#cond-0-path").fill("$.id")
    page.locator("#cond-0-op").select_option("exists")
    expect(page.locator("#cond-0-value")).to_have_value("true")

    # The tier offers no http_request action.
    options = page.locator("#action-new-type option").all_text_contents()
    assert options == ["clockify_api", "set_variable", "stop"]
    page.get_by_role("button", name="Add action").click()
    expect(page.locator("#action-0-type")).to_be_focused()
    page.locator("#action-0-operation").fill("getTimeEntry")
    page.locator("#action-0-operation").dispatch_event("change")
    action = page.locator('fieldset.action[data-index="0"]')
    expect(action.get_by_label("Path parameters (JSON)")).to_have_value(re.compile('"id": ""'))
    action.get_by_label("Path parameters (JSON)").fill('{"id": "{{ $.id }}"}')
    action.get_by_label("Save the response as $vars.").fill("entry")
    page.locator("#action-new-type").select_option("set_variable")
    page.get_by_role("button", name="Add action").click()
    second = page.locator('fieldset.action[data-index="1"]')
    second.get_by_label("Variable name").fill("seen")
    second.get_by_label("Value (JSON template)").fill('"{{ $.description }}"')
    screenshot(page, "flows-editor", full_page=False)

    page.get_by_role("button", name="Save flow").click()
    expect(page.locator("#live")).to_contain_text("saved")
    with service.api(token) as api:
        flows = api.get("/api/flows").json()
    assert len(flows) == 1
    flow = flows[0]
    assert flow["trigger"] == {"events": ["NEW_TIME_ENTRY"]}
    assert flow["conditions"] == {"all": [{"path": "$.id", "op": "exists", "value": True}]}
    assert flow["actions"] == [
        {"id": "step1", "type": "clockify_api", "operation_id": "getTimeEntry", "path": {"id": "{{ $.id }}"},
         "save_as": "entry"},
        {"id": "step2", "type": "set_variable", "name": "seen", "value": "{{ $.description }}"},
    ]

    # The raw JSON mode shows the same document and round-trips an edit back into the form.
    page.get_by_label("JSON", exact=True).check()
    area = page.get_by_label("Flow definition (JSON)")
    document = json.loads(area.input_value())
    assert {k: document[k] for k in ("trigger", "conditions", "actions")} == {
        k: flow[k] for k in ("trigger", "conditions", "actions")}
    document["name"] = "Look up new time entries"
    area.fill(json.dumps(document))
    page.get_by_label("Form", exact=True).check()
    expect(page.get_by_label("Name", exact=True)).to_have_value("Look up new time entries")
    expect(page.locator("#cond-0-path")).to_have_value("$.id")

    page.locator("#dry-event").select_option(str(inbox_id))
    page.get_by_role("button", name="Dry run", exact=True).click()
    verdict = page.locator("#dry-verdict")
    expect(verdict).to_have_text("Would run")
    result = page.locator(".dry-result")
    expect(result).to_contain_text(f"/time-entries/{entry_id}")
    expect(result).to_contain_text("$.id exists true")
    expect(page.locator("#live")).to_contain_text("Matched; 2 actions rendered")
    screenshot(page, "flows-dry-run", part=page.locator(".dry-run"))

    page.get_by_role("button", name="Save flow").click()
    expect(page.locator("#live")).to_contain_text("Look up new time entries")
    page.get_by_role("button", name="Back to flows").click()
    card = page.locator(".card.flow")
    expect(card).to_contain_text("Look up new time entries")
    expect(card.locator(".badge")).to_have_text("Enabled")
    expect(card).to_contain_text("Last error")

    # A new event runs it for real; the run history shows the run.
    fire(service, "NEW_TIME_ENTRY")
    with service.api(token) as api:
        wait_until(lambda: any(r["status"] == "SUCCEEDED" for r in
                               api.get(f"/api/flows/{flow['id']}/runs").json()["runs"]), what="a successful run")
    page.get_by_role("button", name="Runs of Look up new time entries").click()
    runs = page.locator("#runs-title")
    expect(runs).to_be_focused()
    expect(page.locator("#panel-flows tbody tr").first).to_contain_text("SUCCEEDED")
    expect(page.locator("#panel-flows tbody tr").first).to_contain_text("NEW_TIME_ENTRY")
    screenshot(page, "flows-runs")
    page.get_by_role("button", name="Back to flows").click()
    screenshot(page, "flows-list")
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    assert page.js_errors == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [("expired", 401, "expired"), ("forged", 401, "invalid"), ("other-workspace", 403, "not-installed"),
     ("other-installation", 403, "mismatch"), ("missing", 401, "missing")],
)
def test_a_bad_token_gets_an_error_page_with_no_data(
    service: UiService, page: Page, case: str, status: int, reason: str
) -> None:
    other_ws = next(ws for ws in service.state.workspaces if ws != service.workspace_id)
    tokens = {
        "expired": lambda: service.user_token(ttl=-60),
        "forged": lambda: service.forged_token(),
        "other-workspace": lambda: service.user_token(workspace_id=other_ws, addon_id="6a0000000000000000000001",
                                                      theme="DARK"),
        "other-installation": lambda: service.user_token(addon_id="6a0000000000000000000002"),
        "missing": lambda: "",
    }
    token = tokens[case]()
    seen = api_requests(page)
    response = page.goto(service.page_url(token) if token else f"{service.url}/ui")
    assert response is not None
    assert response.status == status
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors https://*.clockify.me" in response.headers["content-security-policy"]
    expect(page.locator("body")).to_have_attribute("data-reason", reason)
    expect(page.get_by_role("button", name="Ask Clockify for a new token")).to_be_visible()
    assert page.locator("#boot").count() == 0
    assert service.workspace_id not in page.content()
    page.wait_for_function("!location.search.includes('auth_token')")
    assert not [url for url in seen if "/api/" in url], seen
    screenshot(page, f"error-{case}-{'dark' if case == 'other-workspace' else 'light'}")


def test_an_uninstalled_workspace_gets_the_error_page(service: UiService, page: Page) -> None:
    other_ws = next(ws for ws in service.state.workspaces if ws != service.workspace_id)
    second = service.sim.control.post("/__sim/install", json={"addonUrl": service.url, "workspaceId": other_ws})
    addon_id = second.raise_for_status().json()["addonId"]
    token = service.sim.control.post("/__sim/user-token", json={"addonId": addon_id}).json()["token"]
    open_page(page, service, token)
    expect(page.locator("#panel-status")).to_contain_text(other_ws)
    service.sim.control.post("/__sim/uninstall", json={"addonId": addon_id}).raise_for_status()
    response = page.goto(service.page_url(token))
    assert response is not None
    assert response.status == 403
    expect(page.locator("body")).to_have_attribute("data-reason", "not-installed")
    assert other_ws not in page.content()


def addon_frame(page: Page) -> Frame:
    handle = page.wait_for_selector("#addon")
    assert handle is not None
    frame = handle.content_frame()
    assert frame is not None
    return frame


def test_the_token_is_refreshed_before_it_expires_from_the_parent_window_only(
    service: UiService, host: HostServer, page: Page
) -> None:
    # Four minutes left, under the five-minute margin: the page asks at once.
    token = service.user_token(ttl=240)
    sessions: list[str] = []
    page.on("request", lambda r: sessions.append(r.headers.get("x-addon-token", ""))
            if r.url.endswith("/api/session") else None)
    page.goto(host.url(service.page_url(token)))
    frame = addon_frame(page)
    expect(frame.locator("#panel-status h3").first).to_be_visible()
    wait_until(lambda: page.evaluate("window.requests.length") >= 1, page=page, what="a refreshAddonToken request")
    assert page.evaluate("window.requests[0]") == '{"action":"refreshAddonToken"}'
    assert "auth_token" not in frame.url

    # Another frame of the page cannot hand the add-on a token.
    intruder = service.user_token()
    page.evaluate("""(token) => document.getElementById("sibling").contentWindow.eval(
        `parent.frames[0].postMessage(JSON.stringify({title: "refreshAddonToken", body: "${token}"}), "*")`)""", intruder)
    page.wait_for_timeout(1000)
    assert intruder not in sessions

    # Clockify answers (as an object); the page verifies the token, then uses it.
    fresh = service.user_token()
    page.evaluate("""(token) => document.getElementById("addon").contentWindow.postMessage(
        {title: "refreshAddonToken", body: token}, "*")""", fresh)
    wait_until(lambda: fresh in sessions, page=page, what="the new token verified")
    expect(frame.locator("#live")).to_have_text("Session renewed")
    with page.expect_request(lambda r: r.url.endswith("/api/status")) as status_request:
        frame.get_by_role("button", name="Refresh", exact=True).click()
    assert status_request.value.headers["x-addon-token"] == fresh
    assert intruder not in sessions


def test_an_expired_session_hides_the_data_until_clockify_sends_a_new_token(
    service: UiService, host: HostServer, page: Page
) -> None:
    token = service.user_token(ttl=6)
    page.goto(host.url(service.page_url(token)))
    frame = addon_frame(page)
    expect(frame.locator("#panel-status")).to_contain_text(service.workspace_id)
    # Nobody answers the refresh request; once the token has expired the page gives up.
    expired = frame.locator("#expired")
    expect(expired).to_be_visible(timeout=20_000)
    expect(frame.locator("#app")).to_be_hidden()
    assert (frame.locator("#panel-status .status-content").text_content() or "") == ""
    assert service.workspace_id not in frame.locator("body").inner_text()
    screenshot(page, "session-expired")

    fresh = service.user_token()
    page.evaluate("(token) => window.replies.push(token)", fresh)
    frame.get_by_role("button", name="Ask Clockify for a new token").click()
    expect(frame.locator("#app")).to_be_visible()
    expect(frame.locator("#panel-status")).to_contain_text(service.workspace_id)
    expect(expired).to_be_hidden()


def test_an_unreadable_session_answer_does_not_stop_the_refresh_chain(
    service: UiService, host: HostServer, page: Page
) -> None:
    # Clockify answers the refresh at once, but /api/session answers 200 with a body that is not JSON
    # (a proxy's error page): the token is not adopted, the page keeps trying, and once the old
    # token has expired it shows the expired state instead of silently keeping stale data.
    token = service.user_token(ttl=8)
    checked: list[str] = []

    def unreadable(route: Route) -> None:
        checked.append(route.request.headers.get("x-addon-token", ""))
        route.fulfill(status=200, content_type="application/json", body="<html>Bad gateway</html>")

    page.route(re.compile(r".*/api/session$"), unreadable)
    fresh = service.user_token()
    page.goto(host.url(service.page_url(token), replies=[fresh]))
    frame = addon_frame(page)
    expect(frame.locator("#panel-status")).to_contain_text(service.workspace_id)
    # The explorer does not poll: only the refresh timer can notice the expiry.
    frame.click("#tab-explorer")
    expect(frame.locator("#panel-explorer")).to_contain_text("getProjects")
    wait_until(lambda: fresh in checked, page=page, what="the new token checked")
    expired = frame.locator("#expired")
    expect(expired).to_be_visible(timeout=30_000)
    expect(frame.locator("#app")).to_be_hidden()
    assert not page.js_errors, page.js_errors  # type: ignore[attr-defined]

    # A readable answer later: the chain was never broken, so the page recovers.
    page.unroute(re.compile(r".*/api/session$"))
    page.evaluate("(token) => window.replies.push(token)", service.user_token())
    frame.get_by_role("button", name="Ask Clockify for a new token").click()
    expect(frame.locator("#app")).to_be_visible()
    expect(expired).to_be_hidden()


def test_the_error_page_button_reopens_the_page_with_a_fresh_token(
    service: UiService, host: HostServer, page: Page
) -> None:
    fresh = service.user_token()
    page.goto(host.url(service.page_url(service.user_token(ttl=-60)), replies=[fresh]))
    frame = addon_frame(page)
    expect(frame.locator("body")).to_have_attribute("data-reason", "expired")
    frame.get_by_role("button", name="Ask Clockify for a new token").click()
    expect(frame.locator("#panel-status")).to_contain_text(service.workspace_id)
    assert "auth_token" not in frame.url


def test_only_allowed_origins_may_frame_the_page(service: UiService, host: HostServer, page: Page) -> None:
    page.goto(host.url(service.page_url(service.owner_token()), origin=host.other_origin))
    frame = addon_frame(page)
    wait_until(lambda: frame.url.startswith("chrome-error:"), page=page, what="the frame to be refused")
    assert any("frame-ancestors" in e and "blocked" in e for e in page.js_errors)  # type: ignore[attr-defined]
