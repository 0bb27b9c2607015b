"""Credentials, scopes, token claims and the rate limiter."""

from __future__ import annotations

import asyncio

import jwt
import pytest

from clockify_core.simulator import RateLimitSettings, SimulatorConfig
from clockify_core.simulator.testing import InProcessSimulator, in_process_simulator, small_config
from tests.simulator.conftest import ADDON_KEY, ADDON_URL, RecordingAddon, manifest


def _decode(token: str, public_pem: bytes) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(token, public_pem, algorithms=["RS256"], options={"verify_exp": True,
                                                                                             "require": []},
                                           issuer="clockify", subject=ADDON_KEY)
    return claims


async def test_missing_unknown_and_foreign_credentials(installed: tuple[InProcessSimulator, RecordingAddon, object]) -> None:
    simulator, _, inst = installed
    ws_a, ws_b = list(simulator.sim.workspaces.values())
    url = f"/api/v1/workspaces/{ws_b.id}/projects"
    assert (await simulator.client().get(url)).status_code == 401
    assert (await simulator.client(token="not-a-token").get(url)).status_code == 401
    assert (await simulator.client(api_key="nope").get(url)).status_code == 401
    forbidden = await simulator.client(token=inst.token).get(url)  # type: ignore[attr-defined]
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"].startswith("application/problem+json")
    ok = await simulator.client(token=inst.token).get(f"/api/v1/workspaces/{ws_a.id}/projects")  # type: ignore[attr-defined]
    assert ok.status_code == 200
    # A webhook token cannot call the API.
    webhook_token = inst.webhooks[0].token  # type: ignore[attr-defined]
    assert (await simulator.client(token=webhook_token).get(f"/api/v1/workspaces/{ws_a.id}/projects")).status_code == 401


async def test_missing_scope_is_403(simulator: InProcessSimulator) -> None:
    addon = RecordingAddon(manifest(events=("NEW_TAG",), scopes=["PROJECT_READ"]))
    await simulator.mount_addon(ADDON_URL, addon.app)
    inst = await simulator.install(ADDON_URL)
    client = simulator.client(token=inst.token)
    ws = simulator.workspace
    assert (await client.get(f"/api/v1/workspaces/{ws.id}/projects")).status_code == 200
    denied = await client.get(f"/api/v1/workspaces/{ws.id}/tags")
    assert denied.status_code == 403
    assert "TAG_READ" in denied.json()["detail"]
    write = await client.post(f"/api/v1/workspaces/{ws.id}/projects", json={"name": "x"})
    assert write.status_code == 403  # WRITE is a separate scope


async def test_token_claims(installed: tuple[InProcessSimulator, RecordingAddon, object]) -> None:
    simulator, addon, inst = installed
    sim = simulator.sim
    pem = sim.keys.public_pem
    ws = simulator.workspace
    claims = _decode(inst.token, pem)  # type: ignore[attr-defined]
    assert claims == {"iss": "clockify", "type": "addon", "sub": ADDON_KEY, "workspaceId": ws.id,
                      "addonId": inst.addon_id, "user": ws.owner_id,  # type: ignore[attr-defined]
                      "backendUrl": "http://clockify.test/api", "reportsUrl": "http://clockify.test/reports",
                      "ptoUrl": "http://clockify.test/pto"}
    hook = _decode(inst.webhooks[0].token, pem)  # type: ignore[attr-defined]
    assert {k: hook[k] for k in ("iss", "type", "sub", "workspaceId", "addonId")} == {
        "iss": "clockify", "type": "addon", "sub": ADDON_KEY, "workspaceId": ws.id, "addonId": inst.addon_id}  # type: ignore[attr-defined]
    assert "exp" not in hook
    assert "user" not in hook
    assert "exp" not in claims
    lifecycle = addon.lifecycle_of("INSTALLED")[0].headers["x-addon-lifecycle-token"]
    assert "exp" in _decode(lifecycle, pem)
    # Token exchange: a 30-minute user token for another user.
    other = ws.user_ix.ids[1]
    r = await simulator.client(token=inst.token).post(f"/api/addon/user/{other}/token")  # type: ignore[attr-defined]
    assert r.status_code == 200
    user_claims = _decode(r.text, pem)
    assert user_claims["user"] == other
    assert user_claims["workspaceRole"] == "USER"
    assert int(user_claims["exp"]) - int(user_claims["iat"]) == 30 * 60  # type: ignore[call-overload]
    me = await simulator.client(token=r.text).get("/api/v1/user")
    assert me.json()["id"] == other
    # A user token cannot mint more tokens.
    assert (await simulator.client(token=r.text).post(f"/api/addon/user/{other}/token")).status_code == 403


async def test_expired_user_token_is_401() -> None:
    now = [1_750_000_000.0]
    async with in_process_simulator(small_config(), clock=lambda: now[0]) as simulator:
        addon = RecordingAddon(manifest(events=()))
        await simulator.mount_addon(ADDON_URL, addon.app)
        inst = await simulator.install(ADDON_URL)
        token = simulator.sim.marketplace.user_token(inst, simulator.workspace.owner_id)
        client = simulator.client(token=token)
        assert (await client.get("/api/v1/user")).status_code == 200
        now[0] += 31 * 60
        assert (await client.get("/api/v1/user")).status_code == 401


async def _burst(simulator: InProcessSimulator, token: str, n: int) -> list[int]:
    client = simulator.client(token=token)
    ws = simulator.workspace
    responses = await asyncio.gather(*(client.get(f"/api/v1/workspaces/{ws.id}/tags") for _ in range(n)))
    return [r.status_code for r in responses]


async def test_429_under_concurrency_grants_exactly_the_budget() -> None:
    frozen = [100.0]
    config = small_config(rate_limit=RateLimitSettings(rate=50, burst=50))
    async with in_process_simulator(config, monotonic=lambda: frozen[0]) as simulator:
        addon = RecordingAddon(manifest(events=(), scopes=["TAG_READ"]))
        await simulator.mount_addon(ADDON_URL, addon.app)
        inst = await simulator.install(ADDON_URL)
        codes = await _burst(simulator, inst.token, 80)
        assert codes.count(200) == 50
        assert codes.count(429) == 30
        limited = await simulator.client(token=inst.token).get(f"/api/v1/workspaces/{simulator.workspace.id}/tags")
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        frozen[0] += 0.1  # 5 tokens refill
        codes = await _burst(simulator, inst.token, 10)
        assert codes.count(200) == 5
        # Another workspace's add-on has its own bucket.
        other = simulator.sim.workspace(list(simulator.sim.workspaces)[1])
        assert (await simulator.client(api_key=other.api_keys[other.owner_id]).get(
            f"/api/v1/workspaces/{other.id}/tags")).status_code == 200


async def test_free_plan_allows_30_in_any_rolling_hour_for_the_workspace() -> None:
    frozen = [0.0]
    config = small_config(rate_limit=RateLimitSettings(plan="free"))
    async with in_process_simulator(config, monotonic=lambda: frozen[0]) as simulator:
        ws = simulator.workspace
        owner = simulator.client(api_key=ws.api_keys[ws.owner_id])
        other = simulator.client(api_key=ws.api_keys[ws.user_ix.ids[1]])
        url = f"/api/v1/workspaces/{ws.id}/tags"
        codes = []
        for i in range(30):  # one a minute, from two users: the workspace's whole budget
            codes.append((await (owner if i % 2 else other).get(url)).status_code)
            frozen[0] += 60
        assert codes == [200] * 30
        limited = await owner.get(url)
        assert limited.status_code == 429
        # The first request leaves the window an hour after it was made (t=0 -> t=3600).
        assert int(limited.headers["Retry-After"]) == 3600 - 30 * 60
        frozen[0] = 3599.0  # a bucket refilling 30/h would have granted about 29 more by now
        assert (await other.get(url)).status_code == 429
        frozen[0] = 3600.0
        assert (await owner.get(url)).status_code == 200
        assert (await other.get(url)).status_code == 429  # the next one leaves at 3660
        frozen[0] = 3660.0
        assert (await other.get(url)).status_code == 200


async def test_user_tokens_spend_the_users_budget_not_the_addons() -> None:
    frozen = [100.0]
    config = small_config(rate_limit=RateLimitSettings(rate=1, burst=3))
    async with in_process_simulator(config, monotonic=lambda: frozen[0]) as simulator:
        addon = RecordingAddon(manifest(events=(), scopes=["TAG_READ"]))
        await simulator.mount_addon(ADDON_URL, addon.app)
        inst = await simulator.install(ADDON_URL)
        ws = simulator.workspace
        owner, member = ws.owner_id, ws.user_ix.ids[1]
        first = simulator.sim.marketplace.user_token(inst, owner)
        again = simulator.sim.marketplace.user_token(inst, owner)  # a refreshed token: same user
        second = simulator.sim.marketplace.user_token(inst, member)

        assert sorted(await _burst(simulator, inst.token, 4)) == [200, 200, 200, 429]  # the add-on's bucket is empty
        assert sorted(await _burst(simulator, first, 2)) == [200, 200]  # ...the owner's is not
        assert sorted(await _burst(simulator, again, 2)) == [200, 429]  # one budget per user, not per token
        assert sorted(await _burst(simulator, second, 4)) == [200, 200, 200, 429]  # the member has their own
        frozen[0] += 1  # one request refills in every bucket
        assert sorted(await _burst(simulator, inst.token, 2)) == [200, 429]
        assert sorted(await _burst(simulator, first, 2)) == [200, 429]


async def test_limits_change_at_runtime(simulator: InProcessSimulator) -> None:
    control = simulator.client()
    r = await control.put("/__sim/rate-limit", json={"enabled": True, "rate": 1, "burst": 2})
    assert r.status_code == 200
    assert (await control.get("/__sim/rate-limit")).json()["burst"] == 2
    client = simulator.owner_client()
    got = [(await client.get("/api/v1/user")).status_code for _ in range(3)]
    assert got == [200, 200, 429]
    # And back: with the limit off, a burst far above the old budget passes.
    assert (await control.put("/__sim/rate-limit", json={"enabled": False})).status_code == 200
    responses = await asyncio.gather(*(client.get("/api/v1/user") for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20


@pytest.mark.parametrize("plan", ["paid", "free"])
def test_config_accepts_plans(plan: str) -> None:
    assert SimulatorConfig(rate_limit=RateLimitSettings(plan=plan)).rate_limit.plan == plan  # type: ignore[arg-type]


async def test_a_members_credentials_carry_the_members_permissions(
    installed: tuple[InProcessSimulator, RecordingAddon, object]
) -> None:
    """A user token or API key acts with its user's rights: a member (role USER) cannot list the
    workspace's users or read, change or report on anyone else's time; an owner can."""
    simulator, _, inst = installed
    ws = simulator.workspace
    owner, member = ws.owner_id, next(uid for uid in ws.users if uid != ws.owner_id)
    base = f"/api/v1/workspaces/{ws.id}"
    owner_row = next(iter(ws.entries.iter_desc(ws.entries.user_rows(ws.user_ix.get(owner)), None, None)))
    owner_entry = ws.entries.id_of(owner_row)
    issued = simulator.sim.marketplace.user_token(inst, member)  # type: ignore[arg-type]
    # A token the simulator signed but did not hand out (a page's own variant) is accepted as well.
    signed = inst.signer.user_token(ws.id, inst.addon_id, user_id=member,  # type: ignore[attr-defined]
                                    backend_url="x", reports_url="y", workspace_role="USER")
    for client in (simulator.client(token=issued), simulator.client(token=signed),
                   simulator.client(api_key=ws.api_keys[member])):
        assert (await client.get("/api/v1/user")).json()["id"] == member
        users = await client.get(f"{base}/users")
        assert users.status_code == 403, users.text
        assert ws.users[owner]["email"] not in users.text
        assert (await client.get(f"{base}/user/{owner}/time-entries")).status_code == 403
        assert (await client.get(f"{base}/time-entries/{owner_entry}")).status_code == 403
        assert (await client.delete(f"{base}/time-entries/{owner_entry}")).status_code == 403
        assert (await client.get(f"{base}/time-entries/status/in-progress")).status_code == 403
        assert (await client.post(f"{base}/projects", json={"name": "by a member"})).status_code == 403
        mine = await client.get(f"{base}/user/{member}/time-entries")
        assert mine.status_code == 200
        assert {e["userId"] for e in mine.json()} <= {member}
        report = await client.post(f"/reports/v1/workspaces/{ws.id}/reports/detailed", json={
            "dateRangeStart": "2000-01-01T00:00:00Z", "dateRangeEnd": "2100-01-01T00:00:00Z",
            "users": {"ids": [owner], "contains": "CONTAINS"}, "detailedFilter": {"page": 1, "pageSize": 50}})
        assert report.status_code == 200, report.text
        assert {e["userId"] for e in report.json()["timeEntries"]} <= {member}
    assert ws.entries.row_of(owner_entry) == owner_row  # the refused delete changed nothing

    owner_token = simulator.client(token=simulator.sim.marketplace.user_token(inst, owner))  # type: ignore[arg-type]
    assert (await owner_token.get(f"{base}/users")).status_code == 200
    assert (await owner_token.get(f"{base}/time-entries/{owner_entry}")).status_code == 200
    # An ADMIN-role token of the member (as Clockify signs it for an admin) has admin rights.
    admin = inst.signer.user_token(ws.id, inst.addon_id, user_id=member,  # type: ignore[attr-defined]
                                   backend_url="x", reports_url="y", workspace_role="ADMIN")
    assert (await simulator.client(token=admin).get(f"{base}/user/{owner}/time-entries")).status_code == 200
