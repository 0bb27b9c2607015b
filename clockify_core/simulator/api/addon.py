"""Add-on-only endpoints under ``{backendUrl}/addon``: settings and the user-token exchange (docs/clockify.md#add-on-endpoints)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from clockify_core.errors import BadRequest, Forbidden
from clockify_core.simulator.api.deps import SimDep, authorize, json_response
from clockify_core.simulator.auth import Principal
from clockify_core.simulator.marketplace import Installation

router = APIRouter(prefix="/addon")


def _installation(principal: Principal) -> Installation:
    if principal.installation is None:
        raise Forbidden("Only add-on tokens reach the add-on endpoints", message="Access Denied", code=403)
    return principal.installation


@router.get("/workspaces/{workspaceId}/settings", operation_id="getAddonSettings")
async def get_settings(workspaceId: str, principal: Annotated[Principal, authorize("getAddonSettings")]) -> Response:
    return json_response(_installation(principal).settings)


@router.patch("/workspaces/{workspaceId}/settings", operation_id="updateAddonSettings",
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}})
async def patch_settings(workspaceId: str, sim: SimDep, principal: Annotated[Principal, authorize("updateAddonSettings")],
                         request: Request) -> Response:
    inst = _installation(principal)
    try:  # parsed here, so malformed JSON is Clockify's 400 rather than a validation 422
        body: Any = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise BadRequest("The body is not JSON", message="Invalid settings", code=501) from None
    changes = body.get("settings") if isinstance(body, dict) else body
    if not isinstance(changes, list):  # the items are checked by apply_settings
        raise BadRequest("Send a JSON array of {id, value}", message="Invalid settings", code=501)
    sim.marketplace.apply_settings(inst, changes)
    return json_response(inst.settings)


@router.post("/user/{userId}/token", operation_id="getUserToken")
async def user_token(userId: str, sim: SimDep, principal: Annotated[Principal, authorize("getUserToken")]) -> Response:
    inst = _installation(principal)
    if principal.kind != "installation":
        raise Forbidden("Exchange needs the installation token", message="Access Denied", code=403)
    # DD: "the response body is the token as a string".
    return PlainTextResponse(sim.marketplace.user_token(inst, userId))
