"""`GET /api/status`: the sidebar's token from the query or a header, scoped to its workspace.

Clockify opens the sidebar as ``/ui?auth_token=<user token>`` (docs/clockify.md#components), so the status
route also takes the token from ``auth_token``, verified like the header (signature, claims,
the 30-minute expiry). The access log keeps the query apart from the path and masks every
secret-named parameter.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

import clockify_addon.app
import clockify_addon.settings
from clockify_core.observability.logging import REDACTED
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.sync import state
from clockify_core.sync.models import WORKSPACE_KIND
from clockify_core.testing.addon import AddonHarness, installed_addon
from clockify_core.testing.logs import captured_logs
from clockify_core.webhooks.models import InboxEvent

OTHER_WS = "64f0c0ffee00000000000b0b"


@pytest.fixture
async def addon(simulator: InProcessSimulator, pg_url: str) -> AsyncIterator[AddonHarness]:
    async with installed_addon(
        simulator,
        clockify_addon.app.create_app,
        clockify_addon.settings.Settings,
        db_url=pg_url,
        logging={"access_log": "all"},
    ) as harness:
        await harness.process()
        yield harness


async def add_event(
    addon: AddonHarness, workspace_id: str, event_type: str, received_at: datetime, n: int
) -> None:
    """An inbox row as the receiver stores it (for a workspace the test cannot install twice)."""
    async with addon.runtime.sessions.begin() as s:
        s.add(
            InboxEvent(
                workspace_id=workspace_id,
                event_type=event_type,
                dedup_key=f"test-{workspace_id}-{n}",
                body="{}",
                received_at=received_at,
                status="DONE",
            )
        )


async def test_the_query_token_opens_the_status_of_its_workspace(addon: AddonHarness) -> None:
    by_query = await addon.client.get("/api/status", params={"auth_token": addon.user_token()})
    assert by_query.status_code == 200, by_query.text
    by_header = await addon.client.get("/api/status", headers={"X-Addon-Token": addon.user_token()})
    assert by_header.status_code == 200
    assert by_query.json()["workspace_id"] == by_header.json()["workspace_id"] == addon.workspace_id
    assert by_query.json()["installation"]["status"] == "ACTIVE"


@pytest.mark.parametrize(
    ("token", "status"),
    [
        pytest.param(lambda a: a.user_token(ttl_seconds=-60), 401, id="expired"),
        pytest.param(
            lambda a: a.user_token(ttl_seconds=1800)[:-4] + "AAAA", 401, id="bad-signature"
        ),
        pytest.param(lambda a: a.installation.token, 401, id="installation-token"),
        pytest.param(lambda a: "  ", 401, id="blank"),
    ],
)
async def test_a_bad_query_token_is_refused(addon: AddonHarness, token, status: int) -> None:
    r = await addon.client.get("/api/status", params={"auth_token": token(addon)})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert addon.workspace_id not in r.text


async def test_a_header_wins_over_the_query(addon: AddonHarness) -> None:
    good, bad = addon.user_token(), addon.user_token(ttl_seconds=-60)
    r = await addon.client.get(
        "/api/status", params={"auth_token": good}, headers={"X-Addon-Token": bad}
    )
    assert r.status_code == 401
    r = await addon.client.get(
        "/api/status", params={"auth_token": bad}, headers={"X-Addon-Token": good}
    )
    assert r.status_code == 200


async def test_only_the_status_route_takes_the_query_token(addon: AddonHarness) -> None:
    r = await addon.client.get("/api/flows", params={"auth_token": addon.user_token()})
    assert r.status_code == 401


async def test_last_event_per_type_counts_only_the_workspace(addon: AddonHarness) -> None:
    ws = addon.sim.sim.workspace(addon.workspace_id)
    ops = addon.sim.sim.ops
    client = ops.create_client(ws, {"name": "Status Client"})
    ops.update_client(ws, client["id"], {"name": "Status Client 2"})
    ops.update_client(ws, client["id"], {"name": "Status Client 3"})
    await addon.process()
    late = datetime.now(UTC) + timedelta(hours=1)
    await add_event(addon, OTHER_WS, "CLIENT_UPDATED", late, 1)
    await add_event(addon, OTHER_WS, "NEW_TAG", late, 2)

    body = (await addon.client.get("/api/status", params={"auth_token": addon.user_token()})).json()
    last = body["last_events"]
    assert {k: v["count"] for k, v in last.items()} == {"NEW_CLIENT": 1, "CLIENT_UPDATED": 2}
    async with addon.runtime.sessions() as s:
        from sqlalchemy import func, select

        newest = (
            await s.execute(
                select(func.max(InboxEvent.received_at)).where(
                    InboxEvent.workspace_id == addon.workspace_id,
                    InboxEvent.event_type == "CLIENT_UPDATED",
                )
            )
        ).scalar_one()
    assert datetime.fromisoformat(last["CLIENT_UPDATED"]["last_received_at"]) == newest


async def test_the_access_log_masks_the_query_token(addon: AddonHarness) -> None:
    with captured_logs() as stream:
        token = addon.user_token()
        plain = "plain-secret-value-42"
        ok = await addon.client.get(f"/api/status?auth_token={token}&api_key={plain}&view=compact")
        refused = await addon.client.get(
            "/api/status", params={"auth_token": addon.user_token(ttl_seconds=-60)}
        )
    assert (ok.status_code, refused.status_code) == (200, 401)
    out = stream.getvalue()
    for secret in (token, token.split(".")[1], plain):
        assert secret not in out
    lines = [json.loads(line) for line in out.splitlines() if '"http.request"' in line]
    served = [line for line in lines if line["path"] == "/api/status"]
    assert [line["status"] for line in served] == [200, 401]
    assert served[0]["query"] == f"auth_token={REDACTED}&api_key={REDACTED}&view=compact"
    assert served[1]["query"] == f"auth_token={REDACTED}"


async def test_data_clockify_does_not_offer_is_marked_not_available_with_the_next_check(addon: AddonHarness) -> None:
    # The simulator serves no expenses, invoices, time-off policies...: the bootstrap's
    # reference pull gets a 404 for each, which the status must not present as a fault.
    body = (await addon.client.get("/api/status", params={"auth_token": addon.user_token()})).json()
    rows = {row["kind"]: row for row in body["sync"]}
    unavailable = {kind for kind, row in rows.items() if row["unavailable_status"] is not None}
    assert {"expense", "invoice", "time_off_policy"} <= unavailable
    for kind in unavailable:
        row = rows[kind]
        assert row["unavailable_status"] == 404, row
        assert datetime.fromisoformat(row["parked_until"]) > datetime.now(UTC) + timedelta(hours=12), row
    assert {"project", "tag", "user"} <= {kind for kind, row in rows.items() if row["unavailable_status"] is None}
    assert rows["project"]["parked_until"] is None


async def test_a_workspace_parked_for_failures_is_not_called_unavailable(addon: AddonHarness) -> None:
    async with addon.runtime.sessions.begin() as session:
        await state.set_fields(session, addon.workspace_id, WORKSPACE_KIND,
                               parked_until=datetime.now(UTC) + timedelta(hours=1),
                               parked_reason="3 consecutive failures; last: Clockify answered 404 to GET /x")
    body = (await addon.client.get("/api/status", params={"auth_token": addon.user_token()})).json()
    row = next(row for row in body["sync"] if row["kind"] == WORKSPACE_KIND)
    assert row["parked_reason"].startswith("3 consecutive failures")
    assert row["unavailable_status"] is None
