"""The control surface under ``/__sim``: what Clockify's UI and marketplace would do, over HTTP.

Unauthenticated on purpose (the simulator binds to loopback); documented in docs/simulator.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field
from starlette.responses import PlainTextResponse, Response

from clockify_core.simulator.api.deps import SimDep, json_response
from clockify_core.simulator.config import DeliverySettings, FaultSettings, RateLimitSettings
from clockify_core.simulator.events import EVENTS, fire

router = APIRouter(prefix="/__sim", tags=["simulator control"])


class InstallRequest(BaseModel):
    addonUrl: str = Field(description="Add-on base URL (its manifest is at {url}/manifest) or the manifest URL")
    workspaceId: str | None = None
    asUser: str | None = None


class InstallAllRequest(BaseModel):
    addonUrl: str = Field(description="Add-on base URL (its manifest is at {url}/manifest) or the manifest URL")
    concurrency: int = Field(8, ge=1, le=256, description="INSTALLED calls in flight at once")


class AddonRef(BaseModel):
    addonId: str


class SettingsUpdate(BaseModel):
    addonId: str
    settings: list[dict[str, Any]]


class StatusChange(BaseModel):
    addonId: str
    status: Literal["ACTIVE", "INACTIVE"]


class FireRequest(BaseModel):
    event: str
    workspaceId: str | None = None
    entityId: str | None = None


class TrafficRequest(BaseModel):
    rate: float = Field(gt=0)
    duration: float = Field(gt=0)
    workspaceId: str | None = None
    allWorkspaces: bool = Field(False, description="Spread the rate over every workspace (Zipf-skewed)")
    skew: float = Field(1.0, ge=0, le=5, description="Zipf exponent of the spread; 0 = uniform")
    mix: dict[str, float] | None = None
    wait: bool = False


class UserTokenRequest(BaseModel):
    addonId: str
    userId: str | None = None


@router.get("/info")
async def info(sim: SimDep) -> Response:
    return json_response({
        "baseUrl": sim.urls.base, "backendUrl": sim.urls.backend, "reportsUrl": sim.urls.reports, "ptoUrl": sim.urls.pto,
        "seed": sim.config.seed, "publicKey": sim.keys.public_pem.decode(),
        "workspaces": [{"id": ws.id, "name": ws.name, "ownerId": ws.owner_id, "ownerApiKey": ws.api_keys[ws.owner_id],
                        "users": len(ws.users), "projects": len(ws.projects), "timeEntries": len(ws.entries)}
                       for ws in sim.workspaces.values()],
        "events": list(EVENTS),
    })


@router.get("/public-key")
async def public_key(sim: SimDep) -> Response:
    return PlainTextResponse(sim.keys.public_pem.decode(), media_type="application/x-pem-file")


@router.get("/workspaces/{workspaceId}/users")
async def users(workspaceId: str, sim: SimDep) -> Response:
    ws = sim.workspace(workspaceId)
    return json_response([{"id": u, "name": r["name"], "email": r["email"], "apiKey": ws.api_keys.get(u)}
                          for u, r in ws.users.items()])


@router.post("/install")
async def install(request: InstallRequest, sim: SimDep) -> Response:
    inst = await sim.marketplace.install(request.addonUrl, workspace_id=request.workspaceId, as_user=request.asUser)
    return json_response(inst.summary(), 201)


@router.post("/install-all")
async def install_all(request: InstallAllRequest, sim: SimDep) -> Response:
    """Install the add-on on every workspace that lacks it (a marketplace burst); failures are listed."""
    return json_response(await sim.marketplace.install_all(request.addonUrl, concurrency=request.concurrency))


@router.post("/uninstall")
async def uninstall(request: AddonRef, sim: SimDep) -> Response:
    return json_response((await sim.marketplace.uninstall(request.addonId)).summary())


@router.get("/installations")
async def installations(sim: SimDep) -> Response:
    return json_response([i.summary() for i in sim.marketplace.installations.values()])


@router.post("/settings-update")
async def settings_update(request: SettingsUpdate, sim: SimDep) -> Response:
    inst = await sim.marketplace.update_settings(request.addonId, request.settings)
    return json_response({"addonId": inst.addon_id, "settings": inst.flat_settings()})


@router.post("/status-change")
async def status_change(request: StatusChange, sim: SimDep) -> Response:
    return json_response((await sim.marketplace.change_status(request.addonId, request.status)).summary())


@router.post("/user-token")
async def user_token(request: UserTokenRequest, sim: SimDep) -> Response:
    inst = sim.marketplace.get(request.addonId)
    return json_response({"token": sim.marketplace.user_token(inst, request.userId or inst.as_user)})


@router.get("/lifecycle")
async def lifecycle_log(sim: SimDep) -> Response:
    return json_response([{"addonId": c.addon_id, "type": c.kind, "url": c.url, "payload": c.payload,
                           "statusCode": c.status_code, "error": c.error} for c in sim.marketplace.calls])


@router.post("/fire")
async def fire_event(request: FireRequest, sim: SimDep) -> Response:
    fired = fire(sim, request.event, workspace_id=request.workspaceId, entity_id=request.entityId)
    return json_response({"event": fired.event, "workspaceId": fired.workspace_id, "queued": fired.queued,
                          "body": fired.body})


@router.post("/traffic")
async def traffic(request: TrafficRequest, sim: SimDep) -> Response:
    kwargs: dict[str, Any] = {"workspace_id": request.workspaceId, "mix": request.mix,
                              "all_workspaces": request.allWorkspaces, "skew": request.skew}
    if request.wait:
        return json_response((await sim.traffic.run(request.rate, request.duration, **kwargs)).summary())
    return json_response(sim.traffic.start(request.rate, request.duration, **kwargs).summary(), 202)


@router.get("/traffic")
async def traffic_status(sim: SimDep) -> Response:
    return json_response(sim.traffic.current.summary() if sim.traffic.current else None)


@router.get("/traffic/changes")
async def traffic_changes(sim: SimDep, since: float = 0.0) -> Response:
    """The changes the current traffic run made (the latest 200,000), with their wall-clock times."""
    run = sim.traffic.current
    found = [c.summary() for c in run.changes if c.at >= since] if run else []
    return json_response({"changes": found})


@router.delete("/traffic")
async def traffic_stop(sim: SimDep) -> Response:
    await sim.traffic.stop()
    return json_response(sim.traffic.current.summary() if sim.traffic.current else None)


@router.get("/faults")
async def get_faults(sim: SimDep) -> Response:
    return json_response(sim.faults.settings.model_dump() | {"counts": sim.faults.counts})


@router.put("/faults")
async def put_faults(settings: FaultSettings, sim: SimDep) -> Response:
    sim.faults.configure(settings)
    sim.config.faults = settings
    return json_response(settings.model_dump())


@router.get("/rate-limit")
async def get_rate_limit(sim: SimDep) -> Response:
    return json_response(sim.config.rate_limit.model_dump())


@router.put("/rate-limit")
async def put_rate_limit(settings: RateLimitSettings, sim: SimDep) -> Response:
    sim.config.rate_limit = settings
    await sim.limiter.aclose()  # buckets restart full under the new limit
    sim.free_quota.clear()
    return json_response(settings.model_dump())


@router.get("/delivery")
async def get_delivery(sim: SimDep) -> Response:
    return json_response(sim.delivery.settings.model_dump())


@router.put("/delivery")
async def put_delivery(settings: DeliverySettings, sim: SimDep) -> Response:
    sim.config.delivery = settings
    await sim.delivery.reconfigure(settings)
    return json_response(settings.model_dump())


@router.get("/deliveries")
async def deliveries(sim: SimDep, event: str | None = None, status: str | None = None,
                     addonId: str | None = None, limit: Annotated[int | None, Query(ge=1)] = None) -> Response:
    found = sim.delivery.query(event=event, status=status, addon_id=addonId, limit=limit)
    return json_response({"pending": sim.delivery.pending, "deliveries": [d.summary() for d in found]})


@router.post("/deliveries/drain")
async def drain(sim: SimDep, seconds: Annotated[float, Body(embed=True, alias="timeout")] = 10.0) -> Response:
    done = await sim.delivery.drain(seconds)
    return json_response({"drained": done, "pending": sim.delivery.pending})


@router.delete("/deliveries")
async def clear_deliveries(sim: SimDep) -> Response:
    sim.delivery.clear()
    return Response(status_code=204)


@router.get("/stats")
async def stats(sim: SimDep) -> Response:
    return json_response({"counters": dict(sim.stats), "faults": sim.faults.counts, "pendingDeliveries": sim.delivery.pending,
                          "deliveries": len(sim.delivery.log),
                          "entries": {ws.id: {"live": len(ws.entries), "rows": ws.entries.rows_total,
                                              "bytes": ws.entries.nbytes()} for ws in sim.workspaces.values()},
                          "plans": {ws.id: ws.plan for ws in sim.workspaces.values()},
                          "requestsByWorkspace": dict(sim.requests_by_workspace),
                          "throttledByWorkspace": dict(sim.throttled_by_workspace),
                          "freeQuota": {"limit": sim.config.rate_limit.free_per_hour, "peak": sim.free_quota.peak}})


@router.get("/requests")
async def requests(sim: SimDep, addonId: str | None = None, workspaceId: str | None = None,
                   limit: Annotated[int | None, Query(ge=1)] = None) -> Response:
    """Authenticated API requests, oldest first (the latest ``limit``): when, what, whose budget, 429 or not."""
    found = [r for r in sim.requests
             if (addonId is None or r.addon_id == addonId) and (workspaceId is None or r.workspace_id == workspaceId)]
    if limit is not None:
        found = found[-limit:]
    return json_response({"requests": [r.summary() for r in found]})


@router.delete("/requests")
async def clear_requests(sim: SimDep) -> Response:
    sim.requests.clear()
    return Response(status_code=204)


@router.post("/reset")
async def reset(sim: SimDep) -> Response:
    """Regenerate data from the seed; installations, credentials and logs are dropped."""
    await sim.traffic.stop()
    await sim.delivery.drain(5)
    sim.generate()
    sim.delivery.clear()
    sim.marketplace.calls.clear()
    sim.requests.clear()
    sim.requests_by_workspace.clear()
    sim.throttled_by_workspace.clear()
    sim.free_quota.clear()
    return json_response({"reset": True, "workspaces": list(sim.workspaces)})
