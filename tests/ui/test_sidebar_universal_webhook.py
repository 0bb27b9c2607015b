"""The sidebar page of Universal Webhook (ENTERPRISE tier: every method, http_request actions,
custom webhook sources) in Chromium, against the simulator."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import HostServer, UiService, running_service, screenshot, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def service(
    postgres_server_url: str, postgres_template: str, tmp_path_factory: pytest.TempPathFactory, host: HostServer
) -> Iterator[UiService]:
    with running_service(
        "universal_webhook", "UNIVERSAL_WEBHOOK_", postgres_server_url=postgres_server_url, template=postgres_template,
        tmp=tmp_path_factory.mktemp("universal_webhook"), host=host,
    ) as svc:
        yield svc


def open_page(page: Page, service: UiService, token: str) -> None:
    response = page.goto(service.page_url(token))
    assert response is not None
    assert response.status == 200
    expect(page.locator("#panel-status h3").first).to_be_visible()


def test_admins_write_through_the_explorer_and_members_only_read(service: UiService, page: Page) -> None:
    open_page(page, service, service.owner_token())
    page.click("#tab-explorer")
    page.get_by_label("Search operations").fill("createNewTag")
    entry = page.locator('[data-operation="createNewTag"]')
    expect(entry).not_to_have_class(re.compile("not-allowed"))
    entry.click()
    body = page.get_by_label(re.compile(r"^Request body \(JSON\)"))
    skeleton = json.loads(body.input_value())
    assert "name" in skeleton
    body.fill(json.dumps({"name": "from-the-sidebar"}))
    page.get_by_role("button", name="Execute").click()
    expect(page.locator("#op-result")).to_contain_text("HTTP 201")
    created = json.loads(page.locator("#op-result pre.body").text_content() or "{}")
    ws = service.state.workspace(service.workspace_id)
    assert ws.tags[created["id"]]["name"] == "from-the-sidebar"
    screenshot(page, "uw-explorer-write", part=page.locator("#panel-explorer .op-form"))

    # A member (the component is for admins, but a member's token may still reach it) reads only.
    member = page.context.new_page()
    open_page(member, service, service.user_token(role="USER"))
    expect(member.locator(".who")).to_contain_text("USER")
    member.click("#tab-explorer")
    member.get_by_label("Search operations").fill("createNewTag")
    expect(member.locator('[data-operation="createNewTag"]')).to_have_class(re.compile("not-allowed"))
    expect(member.locator("#why-createNewTag")).to_contain_text("admin")
    member.click("#tab-flows")
    expect(member.locator("#panel-flows")).to_contain_text("Only workspace owners and admins can change flows.")
    expect(member.get_by_role("button", name="New flow")).to_have_count(0)


def test_a_custom_source_flow_with_an_http_request_dry_runs_on_a_sample_event(service: UiService, page: Page) -> None:
    token = service.owner_token()
    with service.api(token) as api:
        source = api.post("/api/custom-sources", json={"name": "CI builds"}).raise_for_status().json()
    open_page(page, service, token)
    page.click("#tab-flows")
    page.get_by_role("button", name="New flow").click()
    page.get_by_label("Name", exact=True).fill("Failed builds to chat")
    page.get_by_label("A custom webhook source").check()
    page.get_by_label("Source", exact=True).select_option(source["id"])
    page.get_by_label("Event types (X-Event-Type)").fill("build.finished")
    page.get_by_label("Run when").select_option("all")
    page.locator("#cond-0-path").fill("$.status")
    page.locator("#cond-0-value").fill("failed")

    assert "http_request" in page.locator("#action-new-type option").all_text_contents()
    page.locator("#action-new-type").select_option("http_request")
    page.get_by_role("button", name="Add action").click()
    action = page.locator('fieldset.action[data-index="0"]')
    action.get_by_label("Method").select_option("POST")
    action.get_by_label("URL").fill("https://hooks.example.com/ci/{{ $.id }}")
    action.get_by_label("Headers (JSON)").fill('{"Authorization": {"secret": "Bearer s3cret-value"}}')
    action.get_by_label("Body (JSON template)").fill('{"text": "build {{ $.id }} {{ $.status }}"}')
    page.get_by_role("button", name="Save flow").click()
    expect(page.locator("#live")).to_contain_text("Failed builds to chat")

    with service.api(token) as api:
        [flow] = api.get("/api/flows").json()
    assert flow["trigger"] == {"custom_source": source["id"], "events": ["build.finished"]}
    assert flow["conditions"] == {"all": [{"path": "$.status", "op": "eq", "value": "failed"}]}
    assert flow["actions"][0]["headers"] == {"Authorization": {"secret": "********"}}

    page.locator("#dry-event").select_option("sample")
    page.get_by_label("Sample event type").fill("build.finished")
    page.get_by_label("Sample body (JSON)").fill('{"id": "42", "status": "failed"}')
    page.get_by_role("button", name="Dry run", exact=True).click()
    expect(page.locator("#dry-verdict")).to_have_text("Would run")
    result = page.locator(".dry-result")
    expect(result).to_contain_text("https://hooks.example.com/ci/42")
    expect(result).to_contain_text("build 42 failed")
    expect(result).to_contain_text("********")
    assert "s3cret-value" not in page.content()
    screenshot(page, "uw-flow-custom-dry-run", part=page.locator(".dry-run"))

    page.get_by_label("Sample body (JSON)").fill('{"id": "43", "status": "passed"}')
    page.get_by_role("button", name="Dry run", exact=True).click()
    expect(page.locator("#dry-verdict")).to_have_text("Not matched")
    expect(result).to_contain_text("the conditions are false")
    expect(result).to_contain_text('$.status eq "failed" saw passed')


def test_the_flow_list_shows_the_last_error_of_a_failing_flow(service: UiService, page: Page) -> None:
    token = service.owner_token()
    with service.api(token) as api:
        flow = api.post("/api/flows", json={
            "name": "Look up a missing entry",
            "trigger": {"events": ["NEW_TAG"]},
            "actions": [{"id": "lookup", "type": "clockify_api", "operation_id": "getTimeEntry",
                         "path": {"id": "000000000000000000000000"}}],
        }).raise_for_status().json()
        service.sim.control.post("/__sim/fire", json={"event": "NEW_TAG", "workspaceId": service.workspace_id})
        service.sim.control.post("/__sim/deliveries/drain", json={"timeout": 10}).raise_for_status()
        failed = wait_until(lambda: [r for r in api.get(f"/api/flows/{flow['id']}/runs").json()["runs"]
                                     if r["status"] == "FAILED"], what="a failed run")
    open_page(page, service, token)
    page.click("#tab-flows")
    card = page.locator(f'.card.flow[data-flow="{flow["id"]}"]')
    expect(card.locator(".error-text")).to_have_text(failed[0]["error"])
    screenshot(page, "uw-flows-list-error", part=card)


def test_data_clockify_does_not_offer_reads_as_not_available_not_as_a_fault(service: UiService, page: Page) -> None:
    # The simulator serves no expenses: the bootstrap's reference pull gets a 404 for them.
    open_page(page, service, service.owner_token())
    expect(page.locator('.job[data-kind="bootstrap"][data-status="DONE"]')).to_be_visible(timeout=60_000)
    page.get_by_role("button", name="Refresh", exact=True).click()
    status = page.locator("#panel-status")
    row = status.locator("tr", has=page.locator("td", has_text=re.compile(r"^expense$")))
    note = row.locator(".not-available")
    expect(note).to_be_visible()
    expect(note.locator(".badge.neutral")).to_have_text("not available on this workspace")
    expect(note).to_contain_text("Clockify answered 404; next check")
    expect(row).not_to_contain_text("parked")
    expect(row.locator(".error-text, .badge.bad, .badge.warn")).to_have_count(0)
    screenshot(page, "uw-status-not-available", part=row.locator("xpath=ancestor::table"))
