"""`GET /manifest`: the manifest Clockify reads when the add-on is installed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from clockify_core.config import ServiceSettings
from clockify_core.deps import ProfileDep, SettingsDep
from clockify_core.manifest.builder import STANDARD_PARTS, ManifestPart, build_manifest
from clockify_core.manifest.model import Manifest
from clockify_core.tiers import ServiceProfile

router = APIRouter(tags=["manifest"])


def manifest_for(settings: ServiceSettings, profile: ServiceProfile, parts: ManifestPart = STANDARD_PARTS) -> Manifest:
    return build_manifest(
        profile,
        addon_key=settings.signing.addon_key,
        base_url=settings.base_url,
        name=settings.manifest.name,
        plan=settings.manifest.plan,
        webhook_cap=settings.manifest.webhook_cap,
        parts=parts,
    )


@router.get("/manifest", summary="The add-on manifest (schema 1.5)")
async def get_manifest(request: Request, settings: SettingsDep, profile: ProfileDep) -> dict[str, Any]:
    # What the app's capabilities contribute (clockify_core.app puts it on the app's state).
    parts: ManifestPart = request.app.state.manifest_parts
    return manifest_for(settings, profile, parts).to_wire()
