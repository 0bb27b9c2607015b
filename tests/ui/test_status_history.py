"""The status page shows the history backfill bootstrap queues: how far back the mirror reaches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import HostServer, UiService, running_service

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def service(
    postgres_server_url: str, postgres_template: str, tmp_path_factory: pytest.TempPathFactory, host: HostServer
) -> Iterator[UiService]:
    with running_service(
        "clockify_addon", "CLOCKIFY_", postgres_server_url=postgres_server_url, template=postgres_template,
        tmp=tmp_path_factory.mktemp("clockify_addon_history"), host=host,
        extra_env={"CLOCKIFY_SYNC__HISTORY_BACKFILL": "true", "CLOCKIFY_SYNC__SLICE_SECONDS": "0"},
    ) as svc:
        yield svc


def test_the_status_page_shows_how_far_back_the_history_reaches(service: UiService, page: Page) -> None:
    response = page.goto(service.page_url(service.owner_token()))
    assert response is not None
    assert response.status == 200
    card = page.locator('.job[data-kind="backfill"][data-status="DONE"]')
    expect(card).to_be_visible(timeout=120_000)
    ws = service.state.workspace(service.workspace_id)
    oldest = min(ws.entries.start[r] for r in ws.entries.by_start.rows)
    history = card.locator("dt", has_text="History").locator("xpath=following-sibling::dd[1]")
    expect(history).to_contain_text("complete, back to ")
    reached = (history.text_content() or "").rsplit(" ", 1)[-1]
    assert reached <= datetime.fromtimestamp(oldest, UTC).date().isoformat()
    expect(card.locator("dt", has_text="Slices")).to_be_visible()
