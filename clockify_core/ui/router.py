"""`GET /ui` (the sidebar component), its assets, and `GET /api/session` for token refresh.

Clockify opens the component as ``{baseUrl}/ui?auth_token=<user token>`` (docs/clockify.md#components).
The token is verified here before any HTML is sent: a page is only rendered for a valid,
unexpired token of a workspace where this add-on is installed under the token's
``addonId``; anything else gets an error page that holds no data and calls no API.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Header, Query
from starlette.responses import HTMLResponse, Response

from clockify_core.access import UserDep, verify_user_token
from clockify_core.deps import ProfileDep, RuntimeDep, SessionDep, SettingsDep
from clockify_core.errors import ClockifyError, NotFound
from clockify_core.manifest.builder import SIDEBAR_PATH
from clockify_core.ui.page import (
    missing_token,
    page_error,
    page_headers,
    render_error,
    render_page,
    unverified_theme,
)
from clockify_core.ui.session import SessionRead, session_of

router = APIRouter(tags=["ui"])

_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def assets() -> dict[str, Asset]:
    """The vendored files under ``static/``, read once; only these names are ever served."""
    found: dict[str, Asset] = {}
    for entry in (resources.files(__package__) / "static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if entry.is_file() and suffix in _MEDIA_TYPES:
            body = entry.read_bytes()
            found[entry.name] = Asset(body, _MEDIA_TYPES[suffix], '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return found


def base_path(base_url: str) -> str:
    """The path part of the public base URL, for services behind a path prefix."""
    return urlsplit(base_url).path.rstrip("/")


@router.get(SIDEBAR_PATH, response_class=HTMLResponse, summary="The sidebar page Clockify shows in an iframe")
async def sidebar(
    runtime: RuntimeDep,
    session: SessionDep,
    settings: SettingsDep,
    profile: ProfileDep,
    auth_token: Annotated[str | None, Query(description="The user token Clockify appends")] = None,
) -> HTMLResponse:
    headers = page_headers(settings.ui)
    prefix = base_path(settings.base_url)
    if not auth_token:
        error = missing_token()
        return HTMLResponse(render_error(error, prefix=prefix, theme=None), error.status, headers=headers)
    try:
        user = await verify_user_token(runtime, session, auth_token)
    except ClockifyError as exc:
        error = page_error(exc)
        html = render_error(error, prefix=prefix, theme=unverified_theme(auth_token))
        return HTMLResponse(html, error.status, headers=headers)
    return HTMLResponse(render_page(session_of(user, profile, settings.ui), prefix=prefix), headers=headers)


@router.get(SIDEBAR_PATH + "/assets/{name}", include_in_schema=False)
async def asset(name: str, if_none_match: Annotated[str | None, Header()] = None) -> Response:
    found = assets().get(name)
    if found is None:
        raise NotFound("no such asset")
    headers = {"ETag": found.etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "no-referrer"}
    if if_none_match == found.etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)


@router.get("/api/session", summary="The verified claims and tier features the page needs")
async def current_session(user: UserDep, profile: ProfileDep, settings: SettingsDep) -> SessionRead:
    return session_of(user, profile, settings.ui)
