"""The sidebar page passes axe-core in every view it has, in both themes, and every label names its control.

axe-core comes from the axe-playwright-python wheel (its ``axe.min.js``; a dev dependency,
so nothing is fetched at test time). It is injected into the page and run with the rules
below; a violation fails the test with axe's own explanation of each offending node.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import HostServer, UiService, running_service, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# WCAG 2 A and AA (labels, names, contrast, ARIA validity...) and the best practices that
# catch a label pointing at the wrong element or two elements sharing an id.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
AXE_RULES = ["label", "duplicate-id", "duplicate-id-aria", "duplicate-id-active", "button-name", "color-contrast",
             "select-name", "form-field-multiple-labels", "label-title-only", "aria-valid-attr-value",
             "nested-interactive", "empty-heading", "heading-order", "landmark-unique", "tabindex"]

# Every label's `for` names an element of the page (axe only sees the control left unnamed),
# and no id is given twice (axe 4.12 no longer reports a duplicate id on a plain element).
_DANGLING_LABELS = """() => [...document.querySelectorAll("label[for]")]
  .filter((label) => !document.getElementById(label.htmlFor))
  .map((label) => `${label.htmlFor} (${label.textContent.trim()})`)"""
_DUPLICATE_IDS = """() => {
  const ids = [...document.querySelectorAll("[id]")].map((el) => el.id);
  return [...new Set(ids.filter((id, i) => ids.indexOf(id) !== i))];
}"""


@cache
def _axe_script() -> str:
    return (importlib.resources.files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")


def accessibility_problems(page: Page) -> list[str]:
    """axe's violations (rule, impact, help, then each node and why) and dangling labels."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(_axe_script())
    violations: list[dict[str, Any]] = page.evaluate(
        """async ([tags, rules]) => {
          const tagged = await axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
          const named = await axe.run(document, {runOnly: {type: "rule", values: rules}, resultTypes: ["violations"]});
          const seen = new Set();
          return [...tagged.violations, ...named.violations].filter((v) => !seen.has(v.id) && seen.add(v.id))
            .map((v) => ({id: v.id, impact: v.impact, help: v.help,
                          nodes: v.nodes.map((n) => `${n.target.join(" ")}: ${n.failureSummary}`)}));
        }""",
        [AXE_TAGS, AXE_RULES],
    )
    problems = [f"{v['id']} ({v['impact']}): {v['help']}\n    " + "\n    ".join(v["nodes"]) for v in violations]
    problems += [f"label for a missing element: {label}" for label in page.evaluate(_DANGLING_LABELS)]
    problems += [f"id given twice: {element_id}" for element_id in page.evaluate(_DUPLICATE_IDS)]
    return problems


@pytest.fixture(scope="module")
def service(
    postgres_server_url: str, postgres_template: str, tmp_path_factory: pytest.TempPathFactory, host: HostServer
) -> Iterator[UiService]:
    with running_service(
        "api_studio", "API_STUDIO_", postgres_server_url=postgres_server_url, template=postgres_template,
        tmp=tmp_path_factory.mktemp("api_studio_a11y"), host=host,
    ) as svc:
        yield svc


def open_page(page: Page, service: UiService, token: str) -> None:
    response = page.goto(service.page_url(token))
    assert response is not None
    assert response.status == 200
    expect(page.locator('.job[data-kind="bootstrap"][data-status="DONE"]')).to_be_visible(timeout=60_000)


def _views(page: Page, theme: str) -> Iterator[str]:
    """Walk the page through each view, yielding its name once it is on screen."""
    yield "status"

    page.click("#tab-explorer")
    page.get_by_label("Search operations").fill("getProjects")
    page.locator('[data-operation="getProjects"]').click()
    expect(page.get_by_role("button", name="Execute")).to_be_visible()
    yield "explorer"

    page.click("#tab-flows")
    page.get_by_role("button", name="New flow").click()
    expect(page.locator("#editor-title")).to_be_focused()
    page.get_by_label("Filter events").fill("NEW_TIME")
    page.get_by_label("NEW_TIME_ENTRY", exact=True).check()
    page.get_by_label("Run when").select_option("all")
    page.locator("#cond-0-path").fill("$.id")
    page.get_by_role("button", name="Add action").click()
    # By its label, as a screen reader finds it: the label must point at this very input.
    operation = page.get_by_label("Clockify operation (operationId)")
    operation.fill("getTimeEntry")
    operation.dispatch_event("change")
    expect(page.locator('fieldset.action[data-index="0"]').get_by_label("Path parameters (JSON)")).to_have_value(
        "{\n  \"id\": \"\"\n}")
    screenshot(page, f"a11y-flow-editor-{theme}", full_page=False)
    yield "flow editor"

    page.get_by_label("Name", exact=True).fill(f"Accessible flow ({theme})")
    page.locator('fieldset.action[data-index="0"]').get_by_label("Path parameters (JSON)").fill('{"id": "{{ $.id }}"}')
    page.get_by_role("button", name="Save flow").click()
    expect(page.locator("#live")).to_contain_text("saved")
    page.get_by_role("button", name="Back to flows").click()
    expect(page.locator("article.flow").first).to_be_visible()
    yield "flow list"

    page.get_by_role("button", name=f"Runs of Accessible flow ({theme})").click()
    expect(page.locator("#runs-title")).to_be_visible()
    yield "flow runs"


@pytest.mark.parametrize("theme", ["DEFAULT", "DARK"])
def test_every_view_of_the_sidebar_passes_axe(service: UiService, page: Page, theme: str) -> None:
    open_page(page, service, service.user_token(theme=theme))
    found: dict[str, list[str]] = {}
    errors: list[str] = page.js_errors  # type: ignore[attr-defined]
    for view in _views(page, theme):
        problems = accessibility_problems(page) + [f"script error: {e}" for e in errors]
        errors.clear()
        if problems:
            found[view] = problems
    assert not found, "\n".join(f"[{view}] " + "\n".join(problems) for view, problems in found.items())


def test_the_checker_reports_a_label_pointing_elsewhere_and_a_duplicate_id(service: UiService, page: Page) -> None:
    # The check itself: the faults this test file exists for are caught, not waved through.
    open_page(page, service, service.owner_token())
    page.evaluate("""() => {
      const panel = document.getElementById("panel-status");
      const input = document.createElement("input");
      input.id = "a11y-probe";
      const label = document.createElement("label");
      label.htmlFor = "a11y-elsewhere";
      label.textContent = "Probe";
      const twin = document.createElement("span");
      twin.id = "panel-status";
      panel.append(label, input, twin);
    }""")
    problems = "\n".join(accessibility_problems(page))
    assert "label (critical)" in problems
    assert "#a11y-probe" in problems
    assert "label for a missing element: a11y-elsewhere (Probe)" in problems
    assert "id given twice: panel-status" in problems
