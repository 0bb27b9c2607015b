"""Lifecycle tokens are single-use and must expire; INSTALLED is idempotent and safe under
concurrency; an uninstall stops the workspace's running jobs before they call or write again.

Everything goes through HTTP into a real service installed in the simulator, on a real
database. A gate between the service and the simulator records every request the service
sends to Clockify and can hold requests, so "DELETED arrives while a job is waiting for
Clockify" is arranged by ordering, never by timing.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import Table, func, select

import clockify_addon.app
import clockify_addon.settings
from clockify_core.installations.models import Installation, UsedLifecycleToken
from clockify_core.jobs.models import Job, JobKind, JobStatus
from clockify_core.jobs.worker import run_one
from clockify_core.models import metadata
from clockify_core.retention.service import run_retention
from clockify_core.security.crypto import token_digest
from clockify_core.simulator.marketplace import Installation as SimInstallation
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import ADDON_URL, AddonHarness, installed_addon
from tests.gate import Gate

CA = (clockify_addon.app.create_app, clockify_addon.settings.Settings)


def ids(inst: SimInstallation, **more: Any) -> dict[str, Any]:
    return {"addonId": inst.addon_id, "workspaceId": inst.workspace_id, **more}


async def lifecycle(addon: AddonHarness, route: str, token: str, body: dict[str, Any]) -> httpx.Response:
    return await addon.client.post(f"/lifecycle/{route}", json=body, headers={"X-Addon-Lifecycle-Token": token})


async def stored(addon: AddonHarness) -> Installation:
    async with addon.runtime.sessions() as s:
        installation = await s.get(Installation, addon.workspace_id)
    assert installation is not None
    return installation


async def jobs(addon: AddonHarness) -> list[tuple[str, str]]:
    async with addon.runtime.sessions() as s:
        rows = (await s.execute(select(Job.kind, Job.status).order_by(Job.id))).all()
    return [(kind, status) for kind, status in rows]


async def row_counts(addon: AddonHarness) -> dict[str, int]:
    """Rows of the workspace per table, the installation record and jobs left out."""
    out: dict[str, int] = {}
    async with addon.runtime.sessions() as s:
        for table in metadata.sorted_tables:
            assert isinstance(table, Table)
            if "workspace_id" in table.c and table.name not in {"installations", "jobs"}:
                count = await s.scalar(select(func.count()).select_from(table).where(table.c.workspace_id == addon.workspace_id))
                out[table.name] = int(count or 0)
    return out


def assert_refused(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert reason in response.json()["detail"]


async def test_a_lifecycle_token_without_exp_is_refused(simulator: InProcessSimulator, db_url: str) -> None:
    async with installed_addon(simulator, *CA, db_url=db_url) as addon:
        inst = addon.installation
        assert inst is not None
        claims = {"iss": "clockify", "type": "addon", "sub": inst.addon_key, "workspaceId": inst.workspace_id,
                  "addonId": inst.addon_id}
        for route, body in (("status-changed", ids(inst, status="INACTIVE")),
                            ("deleted", ids(inst, asUser=inst.as_user))):
            assert_refused(await lifecycle(addon, route, inst.signer.sign(claims), body), "must carry exp")
        assert (await stored(addon)).status == "ACTIVE"


async def test_a_lifecycle_token_is_accepted_for_one_call_only(simulator: InProcessSimulator, db_url: str) -> None:
    async with installed_addon(simulator, *CA, db_url=db_url) as addon:
        inst = addon.installation
        assert inst is not None
        await addon.process()
        first = inst.signer.lifecycle_token(inst.workspace_id, inst.addon_id)
        settings = [{"id": "flows_enabled", "name": "Run flows", "value": False}]
        r = await lifecycle(addon, "settings-updated", first, ids(inst, settings=settings))
        assert r.status_code == 200, r.text
        before = await stored(addon)
        for _ in range(2):
            assert_refused(await lifecycle(addon, "status-changed", first, ids(inst, status="INACTIVE")),
                           "used already")
        assert_refused(await lifecycle(addon, "settings-updated", first, ids(inst, settings=[])), "used already")

        second = inst.signer.lifecycle_token(inst.workspace_id, inst.addon_id)
        assert second != first  # issued in the same second, still another token
        r = await lifecycle(addon, "status-changed", second, ids(inst, status="INACTIVE"))
        assert r.status_code == 200, r.text
        rows = await row_counts(addon)
        assert_refused(await lifecycle(addon, "deleted", second, ids(inst, asUser=inst.as_user)), "used already")
        after = await stored(addon)
        assert (after.status, after.settings, after.auth_token_encrypted) == (
            "INACTIVE", before.settings, before.auth_token_encrypted)
        assert await row_counts(addon) == rows
        assert rows["time_entries"] > 0
        async with addon.runtime.sessions() as s:
            used = (await s.execute(select(UsedLifecycleToken.digest, UsedLifecycleToken.event)
                                    .where(UsedLifecycleToken.event != "INSTALLED"))).all()
        assert sorted(used) == sorted([(token_digest(first), "SETTINGS_UPDATED"),
                                       (token_digest(second), "STATUS_CHANGED")])


@asynccontextmanager
async def second_instance(addon: AddonHarness, sim: InProcessSimulator) -> Any:
    """Another instance of the service on the same database."""
    app = clockify_addon.app.create_app(addon.settings, clockify_transport=sim.transport, configure_logs=False)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=ADDON_URL) as client:
            yield client


async def test_instances_on_one_database_agree_on_used_tokens(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(simulator, *CA, db_url=pg_url) as addon, second_instance(addon, simulator) as other:
        inst = addon.installation
        assert inst is not None
        token = inst.signer.lifecycle_token(inst.workspace_id, inst.addon_id)
        r = await lifecycle(addon, "status-changed", token, ids(inst, status="INACTIVE"))
        assert r.status_code == 200, r.text
        headers = {"X-Addon-Lifecycle-Token": token}
        for route, body in (("status-changed", ids(inst, status="ACTIVE")),
                            ("deleted", ids(inst, asUser=inst.as_user))):
            assert_refused(await other.post(f"/lifecycle/{route}", json=body, headers=headers), "used already")
        assert (await stored(addon)).status == "INACTIVE"
        # The other instance's own fresh token works there, and is then refused here.
        fresh = inst.signer.lifecycle_token(inst.workspace_id, inst.addon_id)
        r = await other.post("/lifecycle/status-changed", json=ids(inst, status="ACTIVE"),
                             headers={"X-Addon-Lifecycle-Token": fresh})
        assert r.status_code == 200, r.text
        assert_refused(await lifecycle(addon, "status-changed", fresh, ids(inst, status="INACTIVE")), "used already")
        assert (await stored(addon)).status == "ACTIVE"


async def test_used_tokens_are_forgotten_once_expired(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(simulator, *CA, db_url=pg_url) as addon:
        inst = addon.installation
        assert inst is not None
        token = inst.signer.lifecycle_token(inst.workspace_id, inst.addon_id, ttl_seconds=60)
        assert (await lifecycle(addon, "status-changed", token, ids(inst, status="INACTIVE"))).status_code == 200
        async with addon.runtime.sessions() as s:
            row = await s.get(UsedLifecycleToken, token_digest(token))
        assert row is not None
        assert (await run_retention(addon.runtime))["used_lifecycle_tokens"] == 0
        assert (await run_retention(addon.runtime, now=row.expires_at))["used_lifecycle_tokens"] == 0
        later = row.expires_at + timedelta(seconds=1)
        assert (await run_retention(addon.runtime, now=later))["used_lifecycle_tokens"] == 1
        async with addon.runtime.sessions() as s:
            assert await s.get(UsedLifecycleToken, token_digest(token)) is None


async def capture_installed(simulator: InProcessSimulator, addon: AddonHarness) -> tuple[SimInstallation, bytes, str]:
    """Install through the simulator, keeping the INSTALLED call for the test to send (answered 200)."""
    captured: list[tuple[bytes, str]] = []

    async def capturing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/lifecycle/installed":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            headers = dict(scope["headers"])
            captured.append((body, headers[b"x-addon-lifecycle-token"].decode()))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await addon.app(scope, receive, send)

    await simulator.mount_addon(ADDON_URL, capturing)
    inst = await simulator.install(ADDON_URL)
    await simulator.mount_addon(ADDON_URL, addon.app)
    addon.installation = inst
    [(body, token)] = captured
    return inst, body, token


@pytest.mark.parametrize("same_token", [True, False], ids=["same-token", "fresh-tokens"])
async def test_concurrent_identical_installed_calls_make_one_installation(
    simulator: InProcessSimulator, db_url: str, same_token: bool
) -> None:
    async with installed_addon(simulator, *CA, db_url=db_url, install=False) as addon:
        inst, body, token = await capture_installed(simulator, addon)
        tokens = [token if same_token else inst.signer.lifecycle_token(inst.workspace_id, inst.addon_id)
                  for _ in range(8)]
        responses = await asyncio.gather(*(
            addon.client.post("/lifecycle/installed", content=body, headers={
                "X-Addon-Lifecycle-Token": t, "Content-Type": "application/json"}) for t in tokens))
        assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses if r.status_code != 200]
        async with addon.runtime.sessions() as s:
            installations = (await s.scalars(select(Installation))).all()
        assert [(i.workspace_id, i.addon_id, i.status) for i in installations] == [
            (inst.workspace_id, inst.addon_id, "ACTIVE")]
        assert sorted(await jobs(addon)) == [("bootstrap", "QUEUED"), ("register_webhooks", "QUEUED")]


async def test_a_repeated_installed_answers_2xx_and_queues_nothing(simulator: InProcessSimulator, db_url: str) -> None:
    async with installed_addon(simulator, *CA, db_url=db_url, install=False) as addon:
        inst, body, token = await capture_installed(simulator, addon)
        headers = {"X-Addon-Lifecycle-Token": token, "Content-Type": "application/json"}
        r = await addon.client.post("/lifecycle/installed", content=body, headers=headers)
        assert r.status_code == 200, r.text
        await addon.process()
        done = await jobs(addon)
        assert {status for _, status in done} == {"DONE"}
        before = await stored(addon)
        rows = await row_counts(addon)
        # Clockify's retry (same token) or a replay under a fresh token: 2xx, nothing new.
        fresh = inst.signer.lifecycle_token(inst.workspace_id, inst.addon_id)
        for lifecycle_token in (token, fresh, fresh):
            r = await addon.client.post("/lifecycle/installed", content=body, headers={
                **headers, "X-Addon-Lifecycle-Token": lifecycle_token})
            assert r.status_code == 200, r.text
        assert await jobs(addon) == done
        after = await stored(addon)
        assert (after.status, after.installed_at, after.settings) == ("ACTIVE", before.installed_at, before.settings)
        assert await row_counts(addon) == rows
        # A paused installation is not woken by a repeated INSTALLED either.
        pause = inst.signer.lifecycle_token(inst.workspace_id, inst.addon_id)
        assert (await lifecycle(addon, "status-changed", pause, ids(inst, status="INACTIVE"))).status_code == 200
        r = await addon.client.post("/lifecycle/installed", content=body, headers=headers)
        assert r.status_code == 200, r.text
        assert (await stored(addon)).status == "INACTIVE"
        assert await jobs(addon) == done
        # A used token does not carry an INSTALLED that would change something.
        other = {**json.loads(body), "authToken": inst.signer.installation_token(
            inst.workspace_id, inst.addon_id, user_id=inst.as_user, backend_url=simulator.sim.urls.backend,
            reports_url=simulator.sim.urls.reports, extra={"jti": "another"})}
        r = await addon.client.post("/lifecycle/installed", json=other, headers={"X-Addon-Lifecycle-Token": token})
        assert_refused(r, "used already")
        assert await jobs(addon) == done


@pytest.fixture
def gate(simulator: InProcessSimulator) -> Gate:
    gate = Gate(simulator.transport)
    simulator.transport = gate  # the service's outbound calls go through it
    return gate


async def uninstall_while_held(addon: AddonHarness, gate: Gate, kind: str) -> tuple[int, dict[str, int]]:
    """Run the ``kind`` job until a request of it is held, uninstall, then let it go on.
    Returns how many requests were sent before DELETED answered and the rows after it."""
    job = asyncio.create_task(run_one(addon.runtime, kinds=(kind,)))
    held = asyncio.create_task(gate.holding.wait())
    await asyncio.wait({job, held}, return_when=asyncio.FIRST_COMPLETED)
    assert gate.holding.is_set(), "the job ended before it reached the held request"
    assert not job.done()
    inst = addon.installation
    assert inst is not None
    token = inst.signer.lifecycle_token(inst.workspace_id, inst.addon_id)
    r = await lifecycle(addon, "deleted", token, ids(inst, asUser=inst.as_user))
    assert r.status_code == 200, r.text
    sent = len(gate.sent)
    rows = await row_counts(addon)
    gate.release()
    assert await job is True
    return sent, rows


@pytest.mark.parametrize("retention_days", [0, 1])
async def test_uninstall_stops_a_running_bootstrap(
    simulator: InProcessSimulator, gate: Gate, db_url: str, retention_days: int
) -> None:
    # One request in flight at a time (every pull request waits for a fetcher slot): while one
    # is held, no other can be between its liveness check and the gate when DELETED commits.
    async with installed_addon(simulator, *CA, db_url=db_url, lifecycle={"retention_days": retention_days},
                               sync={"concurrency": 1}) as addon:
        assert await run_one(addon.runtime, kinds=(JobKind.REGISTER_WEBHOOKS,))
        gate.hold_after(4)
        sent, rows = await uninstall_while_held(addon, gate, JobKind.BOOTSTRAP)
        assert gate.sent[sent:] == []  # not one call to Clockify after DELETED
        assert await row_counts(addon) == rows  # not one row written after it
        if retention_days == 0:
            assert set(rows.values()) == {0}
            # The purge leaves only the job that removes our registrations at Clockify.
            assert await jobs(addon) == [(JobKind.UNREGISTER_WEBHOOKS, JobStatus.QUEUED)]
        else:
            assert (JobKind.BOOTSTRAP, JobStatus.CANCELLED) in await jobs(addon)


async def test_uninstall_stops_a_running_registration(
    simulator: InProcessSimulator, gate: Gate, db_url: str
) -> None:
    async with installed_addon(simulator, *CA, db_url=db_url) as addon:
        gate.hold_after(3, lambda r: r.method == "POST" and r.url.path.endswith("/webhooks"))
        sent, rows = await uninstall_while_held(addon, gate, JobKind.REGISTER_WEBHOOKS)
        assert gate.sent[sent:] == []
        assert set(rows.values()) == {0}
        assert set((await row_counts(addon)).values()) == {0}
        # Three registrations went through, the fourth was on its way when DELETED came: no fifth.
        posted = [s for s in gate.sent if s[0] == "POST" and s[1].endswith("/webhooks")]
        assert len(posted) == 4
