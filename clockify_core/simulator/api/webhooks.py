"""Webhooks API: workspace webhooks an add-on or user registers at runtime, plus the add-on's own."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from starlette.responses import Response

from clockify_core.errors import BadRequest, Forbidden
from clockify_core.simulator.api.deps import SimDep, authorize, json_response, public, workspace_of
from clockify_core.simulator.auth import Principal
from clockify_core.simulator.events import EVENTS
from clockify_core.simulator.model import Record, Workspace
from clockify_core.simulator.ops import not_found
from clockify_core.simulator.state import Simulator

router = APIRouter(prefix="/v1/workspaces/{workspaceId}")
TRIGGER_TYPES = {"PROJECT_ID", "USER_ID", "TAG_ID", "TASK_ID", "WORKSPACE_ID", "ASSIGNMENT_ID", "EXPENSE_ID"}
JsonBody = Annotated[dict[str, Any], Body()]


def _addon_webhooks(sim: Simulator, ws: Workspace, addon_id: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for inst in sim.marketplace.of_workspace(ws.id):
        if addon_id and inst.addon_id != addon_id:
            continue
        out.extend({"id": w.id, "name": inst.addon_key, "url": w.url, "userId": inst.addon_user_id,
                    "workspaceId": ws.id, "webhookEvent": w.event, "triggerSource": [],
                    "triggerSourceType": "WORKSPACE_ID", "enabled": inst.status == "ACTIVE", "authToken": w.token,
                    "webhookType": "ADDON"} for w in inst.webhooks)
    return out


def _validate(body: dict[str, Any]) -> None:
    missing = [k for k in ("url", "webhookEvent", "triggerSource", "triggerSourceType") if body.get(k) is None]
    if missing:
        raise BadRequest(f"Missing fields: {missing}", message=f"{missing[0]} must not be null", code=501)
    if body["webhookEvent"] not in EVENTS:
        raise BadRequest(f"Unknown webhookEvent {body['webhookEvent']}", message="Invalid webhook event", code=501)
    if body["triggerSourceType"] not in TRIGGER_TYPES:
        raise BadRequest("Invalid triggerSourceType", message="Invalid trigger source type", code=501)
    if not str(body["url"]).startswith(("http://", "https://")):
        raise BadRequest("url must be http(s)", message="Invalid url", code=501)


def _owned(ws: Workspace, webhook_id: str, principal: Principal) -> Record:
    hook = ws.webhooks.get(webhook_id)
    if hook is None:
        raise not_found("Webhook", webhook_id)
    creator = hook.get("_addonId")
    if principal.installation is not None and creator != principal.installation.addon_id:
        raise Forbidden("This webhook belongs to someone else", message="Access Denied", code=403)
    return hook


@router.get("/webhooks", operation_id="getWebhooks")
async def list_webhooks(workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("getWebhooks")],
                        type: Annotated[str | None, Query()] = None) -> Response:
    ws = workspace_of(sim, principal)
    hooks: list[dict[str, Any]] = []
    if type in (None, "USER_CREATED"):
        hooks += [public(h) for h in ws.webhooks.values()]
    if type in (None, "ADDON"):
        hooks += _addon_webhooks(sim, ws)
    return json_response({"webhooks": hooks, "workspaceWebhookCount": len(ws.webhooks)})


@router.get("/addons/{addonId}/webhooks", operation_id="getAddonWebhooks")
async def addon_webhooks(workspaceId: str, addonId: str, sim: SimDep,
                         principal: Annotated[Principal, authorize("getAddonWebhooks")]) -> Response:
    ws = workspace_of(sim, principal)
    hooks = _addon_webhooks(sim, ws, addonId) + [public(h) for h in ws.webhooks.values() if h.get("_addonId") == addonId]
    return json_response({"webhooks": hooks, "workspaceWebhookCount": len(ws.webhooks)})


@router.post("/webhooks", operation_id="createWebhook", status_code=201)
async def create_webhook(workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("createWebhook")],
                         body: JsonBody) -> Response:
    ws = workspace_of(sim, principal)
    _validate(body)
    if len(ws.webhooks) >= sim.config.webhook_limit:
        raise BadRequest("Webhook limit reached", message="Workspace webhook limit reached", code=501)
    wid = ws.new_id("webhook", int(sim.clock()))
    hook = {"id": wid, "name": body.get("name") or body["webhookEvent"], "url": body["url"],
            "userId": principal.user_id, "workspaceId": ws.id, "webhookEvent": body["webhookEvent"],
            "triggerSource": list(body["triggerSource"]), "triggerSourceType": body["triggerSourceType"],
            "enabled": True, "authToken": sim.webhook_token(ws, wid, principal), "webhookType": "USER_CREATED",
            "_addonId": principal.installation.addon_id if principal.installation else None}
    ws.webhooks[wid] = hook
    return json_response(public(hook), 201)


@router.get("/webhooks/{webhookId}", operation_id="getWebhook")
async def get_webhook(workspaceId: str, webhookId: str, sim: SimDep,
                      principal: Annotated[Principal, authorize("getWebhook")]) -> Response:
    return json_response(public(_owned(workspace_of(sim, principal), webhookId, principal)))


@router.put("/webhooks/{webhookId}", operation_id="updateWebhook")
async def update_webhook(workspaceId: str, webhookId: str, sim: SimDep,
                         principal: Annotated[Principal, authorize("updateWebhook")], body: JsonBody) -> Response:
    hook = _owned(workspace_of(sim, principal), webhookId, principal)
    _validate(body)
    hook.update({"name": body.get("name") or hook["name"], "url": body["url"], "webhookEvent": body["webhookEvent"],
                 "triggerSource": list(body["triggerSource"]), "triggerSourceType": body["triggerSourceType"]})
    return json_response(public(hook))


@router.delete("/webhooks/{webhookId}", operation_id="deleteWebhook")
async def delete_webhook(workspaceId: str, webhookId: str, sim: SimDep,
                         principal: Annotated[Principal, authorize("deleteWebhook")]) -> Response:
    ws = workspace_of(sim, principal)
    _owned(ws, webhookId, principal)
    del ws.webhooks[webhookId]
    return Response(status_code=200)


@router.patch("/webhooks/{webhookId}/token", operation_id="generateNewToken")
async def regenerate_token(workspaceId: str, webhookId: str, sim: SimDep,
                           principal: Annotated[Principal, authorize("generateNewToken")]) -> Response:
    ws = workspace_of(sim, principal)
    hook = _owned(ws, webhookId, principal)
    hook["authToken"] = sim.webhook_token(ws, webhookId, principal)
    return json_response(public(hook))


@router.post("/webhooks/{webhookId}/logs", operation_id="getLogsForWebhook")
async def webhook_logs(workspaceId: str, webhookId: str, sim: SimDep,
                       principal: Annotated[Principal, authorize("getLogsForWebhook")],
                       body: Annotated[dict[str, Any] | None, Body()] = None,
                       page: Annotated[int, Query()] = 0, size: Annotated[int, Query()] = 50) -> Response:
    from clockify_core.simulator.render import iso

    ws = workspace_of(sim, principal)
    known = webhookId in ws.webhooks or any(h["id"] == webhookId for h in _addon_webhooks(sim, ws))
    if not known:
        raise not_found("Webhook", webhookId)
    logs = [{"id": f"{d.id:024x}", "webhookId": webhookId, "requestBody": d.body.decode(),
             "responseBody": "", "statusCode": d.attempts[-1].status_code or 0,
             "respondedAt": iso(int(d.attempts[-1].at)), "event": d.event}
            for d in reversed(sim.delivery.log) if d.target.webhook_id == webhookId and d.attempts]
    first = max(page, 0) * size if page else 0
    return json_response(logs[first:first + max(size, 1)])
