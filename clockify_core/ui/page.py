"""The HTML of the sidebar page and of its error page, and the headers both are sent with.

No inline script or style: the page loads one ES module and one stylesheet from
``/ui/assets/``, and hands the verified session to the module in a JSON data block
(``<script type="application/json">`` is never executed, so CSP allows it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from typing import Any

from clockify_core.config import UiConfig
from clockify_core.errors import (
    ClockifyError,
    NotFound,
    TokenInvalid,
    Unauthorized,
    WorkspaceMismatch,
)
from clockify_core.security.tokens import unverified_claims
from clockify_core.ui.session import SessionRead

# Clockify serves its web app from clockify.me and regional/app subdomains (docs/clockify.md#components).
CLOCKIFY_FRAME_ANCESTORS = ("https://*.clockify.me", "https://clockify.me")

TABS = (("status", "Status"), ("explorer", "API Explorer"), ("flows", "Flows"))


def content_security_policy(config: UiConfig) -> str:
    ancestors = " ".join((*CLOCKIFY_FRAME_ANCESTORS, *config.frame_ancestors))
    return "; ".join((
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        f"frame-ancestors {ancestors}",
    ))


def page_headers(config: UiConfig) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(config),
        # The first URL carries the user token; no request may leak it in a Referer.
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    }


def _theme_attribute(theme: str | None) -> str:
    if theme is None:
        return "auto"  # the stylesheet follows prefers-color-scheme
    return "dark" if theme.upper() == "DARK" else "light"


def _json_block(data: Any) -> str:
    # `<` escaped so no value can close the script element.
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _head(title: str, prefix: str, theme: str, script: str) -> str:
    return (
        "<!doctype html>\n"
        f'<html lang="en" data-theme="{theme}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{escape(title)}</title>\n"
        f'<link rel="stylesheet" href="{escape(prefix)}/ui/assets/app.css">\n'
        f'<script type="module" src="{escape(prefix)}/ui/assets/{script}"></script>\n'
        "</head>\n"
    )


def render_page(session: SessionRead, *, prefix: str) -> str:
    title = session.service.title
    tabs = "".join(
        f'<button type="button" role="tab" id="tab-{key}" aria-controls="panel-{key}" '
        f'aria-selected="{"true" if i == 0 else "false"}" tabindex="{0 if i == 0 else -1}">{label}</button>'
        for i, (key, label) in enumerate(TABS)
    )
    panels = "".join(
        f'<section role="tabpanel" id="panel-{key}" aria-labelledby="tab-{key}" tabindex="0"'
        f'{"" if i == 0 else " hidden"}><p class="muted">Loading…</p></section>'
        for i, (key, _) in enumerate(TABS)
    )
    role = escape(session.role or "member")
    boot = _json_block({"session": session.model_dump(mode="json"), "apiBase": prefix})
    return (
        _head(title, prefix, _theme_attribute(session.theme), "app.js")
        + "<body>\n"
        + '<header class="top"><h1>' + escape(title) + "</h1>"
        + f'<p class="who">Workspace <code>{escape(session.workspace_id)}</code> · {role}</p></header>\n'
        + '<div id="live" class="visually-hidden" role="status" aria-live="polite"></div>\n'
        + '<div id="alert" class="banner error" role="alert" hidden></div>\n'
        + '<div id="app">\n'
        + f'<div class="tabs" role="tablist" aria-label="{escape(title)}">{tabs}</div>\n'
        + f'<main id="main">{panels}</main>\n</div>\n'
        + '<section id="expired" class="error-box" hidden aria-labelledby="expired-title">'
        + '<h2 id="expired-title">Your session has expired</h2>'
        + "<p>Clockify's sign-in token for this page is no longer valid. Nothing is shown until a new one arrives.</p>"
        + '<button type="button" id="expired-refresh" class="primary">Ask Clockify for a new token</button></section>\n'
        + f'<script type="application/json" id="boot">{boot}</script>\n'
        + "</body>\n</html>\n"
    )


@dataclass(frozen=True)
class PageError:
    status: int
    reason: str  # stable code for the page's data-reason (and tests)
    heading: str
    message: str
    detail: str


def missing_token() -> PageError:
    return PageError(401, "missing", "Open this page from Clockify",
                     "This page needs the sign-in token Clockify adds when it opens the add-on.", "no auth_token")


def page_error(exc: ClockifyError) -> PageError:
    if isinstance(exc, Unauthorized):
        if exc.detail == "token expired":
            return PageError(401, "expired", "Your session has expired",
                             "Clockify's sign-in token for this page is no longer valid.", exc.detail)
        return PageError(401, "invalid", "This sign-in token is not valid",
                         "The page was opened with a token Clockify did not issue for this add-on.", exc.detail)
    if isinstance(exc, WorkspaceMismatch):
        return PageError(403, "mismatch", "This token belongs to another installation",
                         "The token was issued for an installation of this add-on that is not active here.", exc.detail)
    if isinstance(exc, NotFound):
        return PageError(403, "not-installed", "The add-on is not installed on this workspace",
                         "Install the add-on on this workspace, or open it from the workspace it is installed on.",
                         exc.detail)
    return PageError(exc.status, "unavailable", "The add-on cannot show this page right now",
                     "Try again in a moment.", exc.detail)


def unverified_theme(token: str | None) -> str | None:
    """The ``theme`` claim of a token that failed verification, for the error page's colours only.

    Nothing else is read from an unverified token, and nothing from it reaches the page but
    one of two fixed attribute values. It is decoded like the verifier decodes, so a forged
    payload (``[[[[...``, junk base64) is just "no theme".
    """
    try:
        theme = unverified_claims(token).get("theme")
    except TokenInvalid:
        return None
    return theme if isinstance(theme, str) else None


def render_error(error: PageError, *, prefix: str, theme: str | None) -> str:
    return (
        _head(error.heading, prefix, _theme_attribute(theme), "error.js")
        + f'<body class="error-page" data-reason="{escape(error.reason)}">\n'
        + '<main class="error-box" aria-labelledby="error-title">'
        + f'<h1 id="error-title">{escape(error.heading)}</h1>'
        + f"<p>{escape(error.message)}</p>"
        + f'<p class="muted">Reason: {escape(error.detail)} (HTTP {error.status})</p>'
        + '<button type="button" id="refresh" class="primary">Ask Clockify for a new token</button>'
        + '<p id="refresh-status" role="status" aria-live="polite"></p>'
        + "</main>\n</body>\n</html>\n"
    )
